/* SPDX-License-Identifier: MIT */
/* CENALLOC_EXPORT: what libcenalloc.so exports; it is built with hidden visibility and exports nothing else. */
#ifndef CENALLOC_EXPORT_H
#define CENALLOC_EXPORT_H

/*
 * libcenalloc.so is compiled with -fvisibility=hidden and
 * -fvisibility-inlines-hidden: a symbol is exported only when its
 * declaration in an installed header says so.
 *
 *  - CENALLOC_EXPORT marks a class, a function or a variable of the public
 *    API (on a class: its out-of-line members, vtable and typeinfo).
 *  - CENALLOC_NO_EXPORT marks a member of an exported class that only the
 *    library itself calls (a private helper), so that it stays out of the
 *    ABI. Never use it on a member an inline function of a header calls.
 *
 * The same attribute serves the library and its users (ELF has no
 * dllimport). tests/abi/exported-symbols.txt lists what the library
 * exports; the test "abi_exported_symbols" fails when it changes.
 * This header is C as well as C++ (the C API uses it).
 */
#if defined(__GNUC__) || defined(__clang__)
#define CENALLOC_EXPORT __attribute__((visibility("default")))
#define CENALLOC_NO_EXPORT __attribute__((visibility("hidden")))
#else
#define CENALLOC_EXPORT
#define CENALLOC_NO_EXPORT
#endif

#endif /* CENALLOC_EXPORT_H */
