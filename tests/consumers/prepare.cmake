# Fixture for the consumer tests (cmake -P): a fresh scratch directory holding the library installed
# from the configured build tree, and the source tree packed the way a release archive would be.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

if(INSTALL)
  execute_process(COMMAND "${CMAKE_COMMAND}" --install "${FACENET_BINARY_DIR}" --prefix "${WORK_DIR}/prefix"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "installing facenet failed (${rc}):\n${out}")
  endif()
endif()

# Only what a consumer of the library needs; the build tree may live inside the source tree.
execute_process(COMMAND "${CMAKE_COMMAND}" -E tar czf "${WORK_DIR}/facenet-src.tar.gz"
    CMakeLists.txt cmake include meson.build meson_options.txt
  WORKING_DIRECTORY "${FACENET_SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "packing the facenet sources failed (${rc}):\n${out}")
endif()
