/* zt_stb.h - included by a test file BEFORE zsesbir.h: turns ZSESBIR_STB_IMAGE
   on when Debian's libstb-dev headers are present (and compiles stb_image in
   this translation unit), unless the build says -DZT_NO_STB (the no-stb
   configuration of `make test`, which then tests the PPM-only paths). */
#ifndef ZT_STB_H
#define ZT_STB_H
#if !defined(ZSESBIR_STB_IMAGE) && !defined(ZT_NO_STB) && defined(__has_include)
#if __has_include(<stb_image.h>) || __has_include(<stb/stb_image.h>)
#define ZSESBIR_STB_IMAGE
#endif
#endif
#ifdef ZSESBIR_STB_IMAGE
#define ZSESBIR_STB_IMAGE_IMPLEMENTATION
#endif
#endif
