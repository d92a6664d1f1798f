# SPDX-License-Identifier: MIT
# Cross-building cenalloc for arm64 Linux with Debian's cross toolchain (gcc-aarch64-linux-gnu,
# g++-aarch64-linux-gnu) against a sysroot of Debian arm64 packages unpacked with dpkg-deb -x
# (scripts/board-conformance makes one):
#   cmake -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCENALLOC_SYSROOT=DIR ...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CENALLOC_SYSROOT "" CACHE PATH "the unpacked arm64 packages (their usr/ and lib/)")
# try_compile projects read this file too: hand them the sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CENALLOC_SYSROOT)
if(NOT CENALLOC_SYSROOT)
  message(FATAL_ERROR "cmake/aarch64-linux-gnu.cmake needs -DCENALLOC_SYSROOT=DIR")
endif()
# The cross compiler has its own libc and libstdc++ (/usr/aarch64-linux-gnu); the sysroot adds the libraries and
# their CMake packages. Search only there for libraries, headers and packages, the host for programs.
set(CMAKE_FIND_ROOT_PATH ${CENALLOC_SYSROOT} /usr/aarch64-linux-gnu)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Shared libraries of the sysroot link against each other (libyaml-cpp needs nothing, fmt nothing, but the
# linker still resolves their NEEDED entries): tell it where they are.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${CENALLOC_SYSROOT}/usr/lib/aarch64-linux-gnu")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-Wl,-rpath-link,${CENALLOC_SYSROOT}/usr/lib/aarch64-linux-gnu")
