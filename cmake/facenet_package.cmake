# Package files for the facenet INTERFACE target: facenetConfig.cmake (+ Version, + Targets) for
# find_package(facenet CONFIG) and facenet.pc for pkg-config. Both are relocatable, so
# `cmake --install build --prefix <anywhere>` works. The header-only package is architecture
# independent, hence share/ rather than lib/.
include(CMakePackageConfigHelpers)

set(FACENET_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/facenet" CACHE STRING
  "Where facenetConfig.cmake is installed, relative to the prefix")
set(FACENET_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
  "Where facenet.pc is installed, relative to the prefix")

configure_package_config_file(cmake/facenetConfig.cmake.in "${PROJECT_BINARY_DIR}/facenetConfig.cmake"
  INSTALL_DESTINATION "${FACENET_INSTALL_CMAKEDIR}")
# 0.x releases may break the API in any minor version; only a matching major.minor is compatible.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/facenetConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)

# pkg-config: the prefix is computed from the .pc file's own location (${pcfiledir}).
file(RELATIVE_PATH FACENET_PC_PREFIX_FROM_PCFILEDIR "/prefix/${FACENET_INSTALL_PKGCONFIGDIR}" "/prefix")
string(REGEX REPLACE "/$" "" FACENET_PC_PREFIX_FROM_PCFILEDIR "${FACENET_PC_PREFIX_FROM_PCFILEDIR}")
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(FACENET_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(FACENET_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(cmake/facenet.pc.in "${PROJECT_BINARY_DIR}/facenet.pc" @ONLY)

if(FACENET_INSTALL)
  install(DIRECTORY include/facenet DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" FILES_MATCHING PATTERN "*.hpp")
  install(TARGETS facenet EXPORT facenetTargets)
  install(EXPORT facenetTargets NAMESPACE facenet:: DESTINATION "${FACENET_INSTALL_CMAKEDIR}")
  install(FILES
    "${PROJECT_BINARY_DIR}/facenetConfig.cmake"
    "${PROJECT_BINARY_DIR}/facenetConfigVersion.cmake"
    cmake/facenet_header_dependencies.cmake
    DESTINATION "${FACENET_INSTALL_CMAKEDIR}")
  install(FILES "${PROJECT_BINARY_DIR}/facenet.pc" DESTINATION "${FACENET_INSTALL_PKGCONFIGDIR}")
  install(DIRECTORY models/ DESTINATION "${CMAKE_INSTALL_DATADIR}/facenet/models" FILES_MATCHING PATTERN "*.safetensors" PATTERN "*.md")
endif()
