# SPDX-License-Identifier: MIT
# Tests of libcenalloc-dmaheap.so (included from shim/CMakeLists.txt): unit tests of the emulator, and
# unmodified C programs run under LD_PRELOAD, in-process and against a cenallocd.
find_package(GTest REQUIRED)
include(GoogleTest)

# An unmodified program: plain C, none of the project's options, not linked to cenalloc.
add_executable(shim_heap_user ${CMAKE_CURRENT_LIST_DIR}/heap_user.c)
set_target_properties(shim_heap_user PROPERTIES COMPILE_OPTIONS "" LINK_OPTIONS "" C_STANDARD 11 C_EXTENSIONS ON)
target_compile_options(shim_heap_user PRIVATE -Wall -Wextra -Wshadow $<$<BOOL:${CENALLOC_WERROR}>:-Werror>)
# Another: closefrom(3), fork() while threads allocate, lseek timing.
add_executable(shim_scenarios ${CMAKE_CURRENT_LIST_DIR}/shim_scenarios.c)
set_target_properties(shim_scenarios PROPERTIES COMPILE_OPTIONS "" LINK_OPTIONS "" C_STANDARD 11 C_EXTENSIONS ON)
target_compile_options(shim_scenarios PRIVATE -Wall -Wextra -Wshadow $<$<BOOL:${CENALLOC_WERROR}>:-Werror>)
find_package(Threads REQUIRED)
target_link_libraries(shim_scenarios PRIVATE Threads::Threads)

# A sanitizer runtime must be the first object loaded: preloading the instrumented shim into an
# uninstrumented program needs the runtime preloaded before it.
set(shim_sanitizer_runtime "")
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  set(runtime_prefix libclang_rt.)
  set(runtime_suffix -${CMAKE_SYSTEM_PROCESSOR}.so)
else()
  set(runtime_prefix lib)
  set(runtime_suffix .so)
endif()
if(CENALLOC_SANITIZE MATCHES "address")
  set(runtime_name ${runtime_prefix}asan${runtime_suffix})
elseif(CENALLOC_SANITIZE MATCHES "thread")
  set(runtime_name ${runtime_prefix}tsan${runtime_suffix})
endif()
if(runtime_name)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=${runtime_name}
                  OUTPUT_VARIABLE shim_sanitizer_runtime OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()

file(GLOB shim_test_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
add_executable(test_shim ${shim_test_sources})
target_compile_options(test_shim PRIVATE ${CENALLOC_TEST_OPTIONS})
cenalloc_test_headers(test_shim service)
# The tests may reach cenalloc's private headers (the shim may not).
target_link_libraries(test_shim PRIVATE cenalloc_dmaheap_core cenalloc_internal cenalloc_test_support
                                        cenalloc_test_support_service GTest::gtest GTest::gtest_main)
add_dependencies(test_shim cenalloc_dmaheap shim_heap_user shim_scenarios dmaheap_conformance cenallocd)
target_compile_definitions(
  test_shim
  PRIVATE CENALLOC_SHIM_LIBRARY="$<TARGET_FILE:cenalloc_dmaheap>"
          SHIM_HEAP_USER="$<TARGET_FILE:shim_heap_user>"
          SHIM_SCENARIOS="$<TARGET_FILE:shim_scenarios>"
          DMAHEAP_CONFORMANCE="$<TARGET_FILE:dmaheap_conformance>"
          CONFORMANCE_EXPECTED="${PROJECT_SOURCE_DIR}/tests/conformance/expected.txt"
          CENALLOC_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
          SANITIZER_RUNTIME="${shim_sanitizer_runtime}")
gtest_discover_tests(test_shim DISCOVERY_TIMEOUT 60 PROPERTIES LABELS shim)
