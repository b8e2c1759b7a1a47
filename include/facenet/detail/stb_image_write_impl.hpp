// Private copy of stb_image_write for every translation unit that includes it (STB_IMAGE_WRITE_STATIC
// gives every function internal linkage), so the header-only library cannot violate the ODR.
// Companion of stb_image_impl.hpp; include this, not <stb/stb_image_write.h>.
#pragma once

#ifndef STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_STATIC
#endif
#ifndef STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
