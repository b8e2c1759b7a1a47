// The one place that compiles stb_image's implementation. STB_IMAGE_STATIC gives every function
// internal linkage, so including this header from many translation units of a header-only library
// cannot violate the ODR. Include this (not <stb/stb_image.h>) wherever stb_image is needed.
#pragma once

#ifndef STB_IMAGE_STATIC
#define STB_IMAGE_STATIC
#endif
#ifndef STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_IMPLEMENTATION
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
