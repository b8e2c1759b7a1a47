# Include directories of the two dependencies facenet uses without linking their targets. Shared by
# the build tree and the installed facenetConfig.cmake; expects find_package(xsimd) to have run.
#
# Debian 12's xsimd target links a non-existent "xtl" library, so linking it breaks every consumer;
# its include directory is all a header-only user needs. stb ships no CMake package at all; facenet
# includes <stb/stb_image.h> and compiles a private (static) copy of the implementation.
get_target_property(FACENET_XSIMD_INCLUDE_DIR xsimd INTERFACE_INCLUDE_DIRECTORIES)
find_path(FACENET_STB_INCLUDE_DIR stb/stb_image.h DOC "Directory that contains stb/stb_image.h")
