# SPDX-License-Identifier: MIT
# cenalloc_layer(NAME [DEPENDS layer...] [LIBS target...]): the object library cenalloc_NAME from src/NAME/*.cpp,
# which may include the headers of NAME and of the layers it DEPENDS on, and uses the third-party LIBS.
#
# How the build enforces the layers (shared/DESIGN.md section 3): a layer's private headers live in src/NAME/ and
# are included as "NAME/x.h", but src/ itself is on no include path. Each layer has an include root of its own,
# <build>/layers/NAME, holding one symlink, NAME -> src/NAME. cenalloc_NAME exports that root and links the
# layers it DEPENDS on, so a layer compiles with its own root and theirs and no other: "core/registry.h"
# included from src/platform does not resolve, and the compiler stops there. Layers link each other PUBLIC
# (a core header that includes a heaps header needs heaps' root wherever it is included), so what a layer sees is
# what its DEPENDS reach; each lists them all anyway, so the line says what the layer may use.
#
# LIBS are the third-party targets the layer's own files use; they are private to it (no layer inherits another's)
# and the libraries built from the layers link all of them (CENALLOC_LAYER_LIBS). Public headers
# (include/cenalloc) are visible to every layer; tests/layering (cmake/CheckLayering.cmake) checks the layer each
# of them belongs to, third-party includes against LIBS, and the code outside src/.
set(CENALLOC_LAYERS "")
set(CENALLOC_LAYER_LIBS "")

# cenalloc_include_root(NAME DIR OUT): make <build>/layers/NAME/NAME a link to DIR and set OUT to
# <build>/layers/NAME, the include directory under which "NAME/x.h" means DIR/x.h and nothing else resolves.
function(cenalloc_include_root name dir out)
  set(root ${PROJECT_BINARY_DIR}/layers/${name})
  file(MAKE_DIRECTORY ${root})
  file(CREATE_LINK ${dir} ${root}/${name} SYMBOLIC)
  set(${out} ${root} PARENT_SCOPE)
endfunction()

function(cenalloc_layer name)
  cmake_parse_arguments(L "" "" "DEPENDS;LIBS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cpp)
  if(NOT sources)
    set(sources ${PROJECT_SOURCE_DIR}/cmake/empty.cpp)
  endif()
  add_library(cenalloc_${name} OBJECT ${sources})
  cenalloc_include_root(${name} ${PROJECT_SOURCE_DIR}/src/${name} root)
  target_include_directories(cenalloc_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${root})
  target_compile_options(cenalloc_${name} PRIVATE ${CENALLOC_WARNINGS})
  foreach(dep IN LISTS L_DEPENDS)
    # Layers are declared bottom up, so a dependency on a later (higher) layer, and with it a cycle, is refused.
    if(NOT dep IN_LIST CENALLOC_LAYERS)
      message(FATAL_ERROR "layer '${name}' depends on '${dep}', which is not a layer declared before it")
    endif()
    target_link_libraries(cenalloc_${name} PUBLIC cenalloc_${dep})
  endforeach()
  target_link_libraries(cenalloc_${name} PRIVATE ${L_LIBS})
  # What tests/layering reads back (tests/CMakeLists.txt writes it out for the check).
  set_property(GLOBAL PROPERTY CENALLOC_LAYER_DEPENDS_${name} ${L_DEPENDS})
  set_property(GLOBAL PROPERTY CENALLOC_LAYER_LIBS_${name} ${L_LIBS})
  set(CENALLOC_LAYERS ${CENALLOC_LAYERS} ${name} PARENT_SCOPE)
  set(libs ${CENALLOC_LAYER_LIBS} ${L_LIBS})
  list(REMOVE_DUPLICATES libs)
  set(CENALLOC_LAYER_LIBS ${libs} PARENT_SCOPE)
endfunction()
