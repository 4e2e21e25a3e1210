/* development-time fragment list; inlined into zsesbir.h before landing */
#include "gemm.h"
#include "vmath.h"
#include "views.h"
#include "elem.h"
#include "attn.h"
#include "conv.h"
#include "loss.h"
#include "optim.h"
