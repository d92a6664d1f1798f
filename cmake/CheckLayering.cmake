# SPDX-License-Identifier: MIT
# The layering check (the layering test): every #include in SOURCE_DIR's src/, include/cenalloc/ and the folders
# outside src/ that build on the library (shim/, tools/) against the layer rules of shared/DESIGN.md section 3.
#   cmake -DSOURCE_DIR=<tree> -DLAYERS_FILE=<file> -P CheckLayering.cmake
# LAYERS_FILE sets CENALLOC_LAYERS and, per layer L, CENALLOC_LAYER_DEPENDS_L and CENALLOC_LAYER_LIBS_L: what the
# cenalloc_layer() calls declare (tests/CMakeLists.txt writes it at configure time). SOURCE_DIR/cmake/
# LayeringTable.cmake says the rest: the layer of each public header, the include prefixes of third-party
# libraries, what shim/ and tools/ may use. Each problem is printed as one "layering: <file>: <problem>" line.
#
# The rules:
# - src/L/ includes "M/x.h" and <cenalloc/x.h> only for M = L or a layer L depends on (directly or through its
#   dependencies), the public header's layer being the one the table names; and third-party headers only of
#   libraries L lists in LIBS. Every folder of src/ is a layer.
# - A public header includes only public headers of its own layer or of the layers that one depends on, and no
#   private or third-party header. Every public header is in the table, and every header the table names exists.
# - An outside folder O includes its own "O/x.h", public headers, the private headers the table grants it by
#   name (each of which it must still include), and third-party headers of the libraries the table lists for it.
cmake_minimum_required(VERSION 3.25)

if(NOT SOURCE_DIR OR NOT LAYERS_FILE)
  message(FATAL_ERROR "usage: cmake -DSOURCE_DIR=<tree> -DLAYERS_FILE=<file> -P CheckLayering.cmake")
endif()
include(${LAYERS_FILE})
include(${SOURCE_DIR}/cmake/LayeringTable.cmake)

set(problems 0)
function(problem file text)
  file(RELATIVE_PATH rel ${SOURCE_DIR} ${file})
  message(NOTICE "layering: ${rel}: ${text}")
  math(EXPR n "${problems} + 1")
  set(problems ${n} PARENT_SCOPE)
endfunction()

# reach_L: L and every layer it depends on, directly or not. Layers are declared bottom up, so the layers a
# dependency reaches are known by the time it is named.
foreach(layer IN LISTS CENALLOC_LAYERS)
  set(reach_${layer} ${layer})
  foreach(dep IN LISTS CENALLOC_LAYER_DEPENDS_${layer})
    list(APPEND reach_${layer} ${reach_${dep}})
  endforeach()
  list(REMOVE_DUPLICATES reach_${layer})
endforeach()

# public_layer_<header>: the layer of each public header.
set(public_headers "")
foreach(entry IN LISTS CENALLOC_PUBLIC_HEADERS)
  string(REGEX MATCH "^([^=]+)=([a-z_]+)$" ok "${entry}")
  if(NOT ok OR NOT CMAKE_MATCH_2 IN_LIST CENALLOC_LAYERS)
    message(FATAL_ERROR "LayeringTable.cmake: '${entry}' is not <header>=<layer>")
  endif()
  set(public_layer_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
  list(APPEND public_headers ${CMAKE_MATCH_1})
endforeach()

# The third-party library (target) an angle-bracket include belongs to, or "" for the system's and the C++ library's.
function(library_of include out)
  set(${out} "" PARENT_SCOPE)
  foreach(entry IN LISTS CENALLOC_THIRD_PARTY)
    string(REGEX MATCH "^([^=]+)=(.+)$" ok "${entry}")
    string(FIND "${include}" "${CMAKE_MATCH_2}" at)
    if(at EQUAL 0)
      set(${out} ${CMAKE_MATCH_1} PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

# The #include lines of a file as a list of <kind><name> ("<fmt/format.h", "\"core/buffer.h").
function(includes_of file out)
  file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  set(found "")
  foreach(line IN LISTS lines)
    string(REGEX MATCH "^[ \t]*#[ \t]*include[ \t]*([<\"])([^>\"]*)[>\"]" ok "${line}")
    list(APPEND found "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

# Check one include of a public header by code that may use the layers in `reach`.
function(check_public file name reach who)
  if(NOT name IN_LIST public_headers)
    problem(${file} "<cenalloc/${name}> is not a public header of cmake/LayeringTable.cmake")
  elseif(NOT public_layer_${name} IN_LIST reach)
    problem(${file} "${who} includes <cenalloc/${name}> of layer '${public_layer_${name}}', which it does not depend on")
  endif()
  set(problems ${problems} PARENT_SCOPE)
endfunction()

# src/<layer>/
file(GLOB folders LIST_DIRECTORIES true ${SOURCE_DIR}/src/*)
foreach(folder IN LISTS folders)
  get_filename_component(name ${folder} NAME)
  if(IS_DIRECTORY ${folder} AND NOT name IN_LIST CENALLOC_LAYERS)
    problem(${folder} "src/${name} is not a layer declared with cenalloc_layer()")
  endif()
endforeach()
foreach(layer IN LISTS CENALLOC_LAYERS)
  file(GLOB_RECURSE files ${SOURCE_DIR}/src/${layer}/*.cpp ${SOURCE_DIR}/src/${layer}/*.h)
  foreach(file IN LISTS files)
    includes_of(${file} includes)
    foreach(inc IN LISTS includes)
      string(SUBSTRING "${inc}" 0 1 kind)
      string(SUBSTRING "${inc}" 1 -1 name)
      if(kind STREQUAL "\"")
        string(REGEX MATCH "^([a-z_]+)/" ok "${name}")
        if(NOT ok)
          problem(${file} "\"${name}\" is not of the form \"layer/file.h\"")
        elseif(NOT CMAKE_MATCH_1 IN_LIST reach_${layer})
          problem(${file} "layer '${layer}' includes \"${name}\" of '${CMAKE_MATCH_1}', which it does not depend on")
        endif()
      elseif(name MATCHES "^cenalloc/")
        string(SUBSTRING "${name}" 9 -1 header)
        check_public(${file} ${header} "${reach_${layer}}" "layer '${layer}'")
      else()
        library_of("${name}" library)
        if(library AND NOT library IN_LIST CENALLOC_LAYER_LIBS_${layer})
          problem(${file} "layer '${layer}' includes <${name}> of ${library}, which is not in its LIBS")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

# include/cenalloc/
foreach(header IN LISTS public_headers)
  if(NOT EXISTS ${SOURCE_DIR}/include/cenalloc/${header})
    problem(${SOURCE_DIR}/cmake/LayeringTable.cmake "public header '${header}' does not exist")
  endif()
endforeach()
file(GLOB_RECURSE files ${SOURCE_DIR}/include/cenalloc/*)
foreach(file IN LISTS files)
  file(RELATIVE_PATH header ${SOURCE_DIR}/include/cenalloc ${file})
  if(NOT header IN_LIST public_headers)
    problem(${file} "not in cmake/LayeringTable.cmake: say which layer implements it")
    continue()
  endif()
  set(layer ${public_layer_${header}})
  includes_of(${file} includes)
  foreach(inc IN LISTS includes)
    string(SUBSTRING "${inc}" 0 1 kind)
    string(SUBSTRING "${inc}" 1 -1 name)
    if(kind STREQUAL "\"")
      problem(${file} "a public header includes \"${name}\": only public headers may be")
    elseif(name MATCHES "^cenalloc/")
      string(SUBSTRING "${name}" 9 -1 included)
      check_public(${file} ${included} "${reach_${layer}}" "public header of layer '${layer}'")
    else()
      library_of("${name}" library)
      if(library)
        problem(${file} "a public header includes <${name}> of ${library}: the installed API uses no third-party library")
      endif()
    endif()
  endforeach()
endforeach()

# The folders outside src/ that build on the library.
foreach(outside IN LISTS CENALLOC_OUTSIDE)
  set(granted_unused ${CENALLOC_OUTSIDE_PRIVATE_${outside}})
  file(GLOB_RECURSE files ${SOURCE_DIR}/${outside}/*.cpp ${SOURCE_DIR}/${outside}/*.h ${SOURCE_DIR}/${outside}/*.c)
  foreach(file IN LISTS files)
    includes_of(${file} includes)
    foreach(inc IN LISTS includes)
      string(SUBSTRING "${inc}" 0 1 kind)
      string(SUBSTRING "${inc}" 1 -1 name)
      if(kind STREQUAL "\"")
        if(name IN_LIST CENALLOC_OUTSIDE_PRIVATE_${outside})
          list(REMOVE_ITEM granted_unused ${name})
        elseif(NOT name MATCHES "^${outside}/")
          problem(${file} "${outside}/ includes \"${name}\": it may use the public API only")
        endif()
      elseif(name MATCHES "^cenalloc/")
        string(SUBSTRING "${name}" 9 -1 header)
        check_public(${file} ${header} "${CENALLOC_LAYERS}" "${outside}/")
      else()
        library_of("${name}" library)
        if(library AND NOT library IN_LIST CENALLOC_OUTSIDE_LIBS_${outside})
          problem(${file} "${outside}/ includes <${name}> of ${library}, which cmake/LayeringTable.cmake does not grant it")
        endif()
      endif()
    endforeach()
  endforeach()
  # A grant nothing uses any more is taken back, so that the list only ever shrinks to what is needed.
  foreach(name IN LISTS granted_unused)
    problem(${SOURCE_DIR}/cmake/LayeringTable.cmake "${outside}/ is granted \"${name}\" but includes it nowhere")
  endforeach()
endforeach()

if(problems GREATER 0)
  message(FATAL_ERROR "layering violated: ${problems} problem(s)")
endif()
message(STATUS "layering ok")
