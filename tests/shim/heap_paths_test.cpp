// SPDX-License-Identifier: MIT
// Tests of the lexical recognition of /dev/dma_heap paths.
#include <gtest/gtest.h>

#include <string>

#include "shim/heap_paths.h"

namespace cenalloc::shim {
namespace {

using Kind = HeapPath::Kind;

struct Case {
    const char* path;
    Kind kind;
    const char* name;
    bool trailingSlash;
};

TEST(HeapPaths, AbsolutePathsAreNormalisedLexicallyBeforeMatching) {
    const Case cases[] = {
        {"/dev/dma_heap", Kind::Directory, "", false},
        {"/dev/dma_heap/", Kind::Directory, "", true},
        {"//dev///dma_heap", Kind::Directory, "", false},
        {"/dev/dma_heap/system", Kind::Entry, "system", false},
        {"/dev/dma_heap/linux,cma", Kind::Entry, "linux,cma", false},
        {"//dev//dma_heap/./system", Kind::Entry, "system", false},
        {"/dev/dma_heap/../dma_heap/system", Kind::Entry, "system", false},
        {"/dev/../dev/dma_heap/system", Kind::Entry, "system", false},
        {"/../../dev/dma_heap/system", Kind::Entry, "system", false},
        {"/dev/dma_heap/system/", Kind::Entry, "system", true},
        {"/dev/dma_heap/system/.", Kind::Entry, "system", true},
        {"/dev/dma_heap/system/x", Kind::Other, "", false},
        {"/dev/dma_heap/..", Kind::Other, "", false},
        {"/dev/dma_heapx/system", Kind::Other, "", false},
        {"/dev/dma_heaps", Kind::Other, "", false},
        {"/dev/dma", Kind::Other, "", false},
        {"/tmp/dma_heap/system", Kind::Other, "", false},
        {"dev/dma_heap/system", Kind::Other, "", false},
        {"", Kind::Other, "", false},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.path);
        char scratch[kPathMax];
        HeapPath hp = classifyAbsolute(c.path, scratch, sizeof scratch);
        EXPECT_EQ(hp.kind, c.kind);
        if (c.kind == Kind::Entry) {
            EXPECT_EQ(hp.name, c.name);
        }
        if (c.kind != Kind::Other) {
            EXPECT_EQ(hp.trailingSlash, c.trailingSlash);
        }
    }
}

TEST(HeapPaths, RelativePathsAreJoinedToTheirBase) {
    char scratch[2 * kPathMax];
    HeapPath hp = classifyJoined("/dev", "dma_heap/system", scratch, sizeof scratch);
    EXPECT_EQ(hp.kind, Kind::Entry);
    EXPECT_EQ(hp.name, "system");
    hp = classifyJoined("/dev/dma_heap", "system", scratch, sizeof scratch);
    EXPECT_EQ(hp.kind, Kind::Entry);
    hp = classifyJoined("/dev/dma_heap", ".", scratch, sizeof scratch);
    EXPECT_EQ(hp.kind, Kind::Directory);
    hp = classifyJoined("/home/user", "dma_heap/system", scratch, sizeof scratch);
    EXPECT_EQ(hp.kind, Kind::Other);
}

TEST(HeapPaths, PathsThatDoNotFitAreNotMatched) {
    std::string longPath = "/dev/dma_heap/" + std::string(kPathMax, 'a');
    char scratch[kPathMax];
    EXPECT_EQ(classifyAbsolute(longPath, scratch, sizeof scratch).kind, Kind::Other);
    char small[8];
    EXPECT_EQ(classifyAbsolute("/dev/dma_heap/system", small, sizeof small).kind, Kind::Other);
    EXPECT_EQ(classifyJoined("/dev", "dma_heap/system", small, sizeof small).kind, Kind::Other);
}

TEST(HeapPaths, OnlyPathsMentioningTheDirectoryAreLookedAt) {
    EXPECT_TRUE(mentionsHeapDir("/dev/dma_heap/system"));
    EXPECT_TRUE(mentionsHeapDir("dma_heap/system"));
    EXPECT_FALSE(mentionsHeapDir("/dev/null"));
    EXPECT_FALSE(mentionsHeapDir("system"));
    EXPECT_FALSE(mentionsHeapDir(nullptr));
}

} // namespace
} // namespace cenalloc::shim
