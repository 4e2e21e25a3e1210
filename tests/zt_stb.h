/* zt_stb.h - included by a test file BEFORE zsesbir.h: stb_image (PNG/JPEG)
   when Debian's libstb-dev headers are present (ZSESBIR_STB_AUTO, which also
   compiles stb_image in this translation unit), unless the build says
   -DZT_NO_STB (the no-stb configuration of `make test`, which then tests the
   PPM-only paths). */
#ifndef ZT_STB_H
#define ZT_STB_H
#ifndef ZT_NO_STB
#define ZSESBIR_STB_AUTO
#endif
#endif
