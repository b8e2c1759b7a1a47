# Checks shared by the CMake consumer projects: what facenet leaks into a consumer's build.

# Consumers see facenet's own headers as non-system ones (add_subdirectory, FetchContent), so
# building them warning-free with -Werror proves the headers are clean for users.
function(facenet_consumer_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror)
endfunction()

# The exported target must carry no -march (consumers pick their own ISA) and must not link the
# xsimd target (Debian 12's links a non-existent "xtl").
function(facenet_consumer_check_target)
  get_target_property(options facenet::facenet INTERFACE_COMPILE_OPTIONS)
  if(options MATCHES "march")
    message(FATAL_ERROR "facenet::facenet exports compile options '${options}'")
  endif()
  get_target_property(libs facenet::facenet INTERFACE_LINK_LIBRARIES)
  if(libs MATCHES "xsimd|xtl")
    message(FATAL_ERROR "facenet::facenet links '${libs}'")
  endif()
endfunction()

# Used as a sub-project, facenet must not add its tests, benchmarks or examples to the build.
function(facenet_consumer_check_no_subdirectories facenet_source_dir)
  get_property(subdirs DIRECTORY "${facenet_source_dir}" PROPERTY SUBDIRECTORIES)
  if(subdirs)
    message(FATAL_ERROR "facenet added sub-directories to a consumer's build: ${subdirs}")
  endif()
endfunction()
