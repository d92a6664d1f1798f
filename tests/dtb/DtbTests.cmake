# SPDX-License-Identifier: MIT
# Device tree tests: fixtures compiled with dtc, the test_dtb executable
# (real Debian dtbs and explain-based known answers) and test_dtb_cli.
# Included from tests/CMakeLists.txt after cenalloc_test() is defined.

# tests/dtb/fixtures/*.dts -> <build>/tests/dtb-fixtures/*.dtb. Fixtures
# named symbols*.dts are compiled with -@ so they carry __symbols__.
find_program(CENALLOC_DTC dtc)
file(GLOB dtb_fixture_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/dtb/fixtures/*.dts)
set(CENALLOC_DTB_FIXTURES ${CMAKE_CURRENT_BINARY_DIR}/dtb-fixtures)
set(dtb_fixture_outputs "")
if(CENALLOC_DTC)
  foreach(source IN LISTS dtb_fixture_sources)
    get_filename_component(stem ${source} NAME_WE)
    set(output ${CENALLOC_DTB_FIXTURES}/${stem}.dtb)
    set(flags -q)
    if(stem MATCHES "^symbols")
      list(APPEND flags -@)
    endif()
    add_custom_command(
      OUTPUT ${output}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CENALLOC_DTB_FIXTURES}
      COMMAND ${CENALLOC_DTC} ${flags} -I dts -O dtb -o ${output} ${source}
      DEPENDS ${source}
      COMMENT "dtc ${stem}.dts"
      VERBATIM)
    list(APPEND dtb_fixture_outputs ${output})
  endforeach()
  # The board scripts/board-conformance boots in qemu (qemu's virt machine and tests/board/board.dtsi), so the
  # model's answers for it are checked on every run, qemu or not.
  set(output ${CENALLOC_DTB_FIXTURES}/qemu-board.dtb)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CENALLOC_DTB_FIXTURES}
    COMMAND ${CENALLOC_DTC} -q -I dts -O dtb -o ${output} ${PROJECT_SOURCE_DIR}/tests/board/board.dts
    DEPENDS ${PROJECT_SOURCE_DIR}/tests/board/board.dts ${PROJECT_SOURCE_DIR}/tests/board/board.dtsi
            ${PROJECT_SOURCE_DIR}/tests/board/qemu-virt.dts
    COMMENT "dtc tests/board/board.dts"
    VERBATIM)
  list(APPEND dtb_fixture_outputs ${output})
else()
  message(WARNING "dtc not found (Debian: device-tree-compiler): the device tree fixture tests will skip")
endif()
add_custom_target(dtb_fixtures DEPENDS ${dtb_fixture_outputs})

cenalloc_test(dtb base platform memory iommu heaps core alloc)
cenalloc_test(dtb_cli base)
if(TARGET test_dtb_cli)
  add_dependencies(test_dtb_cli cenalloc_cli)
endif()
foreach(target test_platform test_dtb test_dtb_cli)
  if(TARGET ${target})
    add_dependencies(${target} dtb_fixtures)
    target_compile_definitions(${target} PRIVATE CENALLOC_DTB_FIXTURES="${CENALLOC_DTB_FIXTURES}")
  endif()
endforeach()
