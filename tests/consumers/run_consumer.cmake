# One consumer test (cmake -P): configures, builds and runs tests/consumers/${KIND} against the
# fixture made by prepare.cmake, and checks the line the program prints.

# Runs a command; on failure stops the test with its output. The output is left in step_output.
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${KIND}: ${what} failed (${rc}):\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(build_dir "${WORK_DIR}/${KIND}")
file(REMOVE_RECURSE "${build_dir}")
set(program "${build_dir}/consumer")

function(cmake_consumer)
  set(make_program)
  if(MAKE_PROGRAM)
    set(make_program "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  step("configure" "${CMAKE_COMMAND}" -S "${CONSUMERS_DIR}/${KIND}" -B "${build_dir}" -G "${GENERATOR}"
    ${make_program} "-DCMAKE_CXX_COMPILER=${CXX}" ${ARGN})
  step("build" "${CMAKE_COMMAND}" --build "${build_dir}")
endfunction()

if(KIND STREQUAL "cmake_find_package")
  cmake_consumer("-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
elseif(KIND STREQUAL "cmake_subdirectory")
  cmake_consumer("-DFACENET_SOURCE_DIR=${FACENET_SOURCE_DIR}")
elseif(KIND STREQUAL "cmake_fetchcontent")
  cmake_consumer("-DFACENET_URL=file://${WORK_DIR}/facenet-src.tar.gz")
elseif(KIND STREQUAL "pkg_config")
  # Exactly what a Makefile user types: c++ main.cpp $(pkg-config --cflags --libs facenet).
  set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig")
  step("pkg-config" "${PKG_CONFIG}" --cflags --libs facenet)
  separate_arguments(flags UNIX_COMMAND "${step_output}")
  file(MAKE_DIRECTORY "${build_dir}")
  step("compile" "${CXX}" -std=c++17 -Wall -Wextra -Wpedantic -Werror "${CONSUMERS_DIR}/${KIND}/main.cpp"
    ${flags} -o "${program}")
elseif(KIND STREQUAL "meson_subproject")
  # Meson wants the subproject inside the consumer's tree: lay out a copy with the archive unpacked.
  set(source_dir "${build_dir}/src/${KIND}")
  file(COPY "${CONSUMERS_DIR}/${KIND}" "${CONSUMERS_DIR}/common" DESTINATION "${build_dir}/src")
  file(MAKE_DIRECTORY "${source_dir}/subprojects/facenet")
  step("unpack" "${CMAKE_COMMAND}" -E chdir "${source_dir}/subprojects/facenet"
    "${CMAKE_COMMAND}" -E tar xzf "${WORK_DIR}/facenet-src.tar.gz")
  set(ENV{CXX} "${CXX}")
  step("meson setup" "${MESON}" setup "${build_dir}/build" "${source_dir}")
  step("meson compile" "${MESON}" compile -C "${build_dir}/build")
  set(program "${build_dir}/build/consumer")
else()
  message(FATAL_ERROR "unknown consumer kind '${KIND}'")
endif()

step("run" "${program}")
if(NOT step_output MATCHES "^facenet [0-9]+\\.[0-9]+\\.[0-9]+ via [^:]+: ok")
  message(FATAL_ERROR "${KIND}: unexpected output:\n${step_output}")
endif()
message(STATUS "${step_output}")
