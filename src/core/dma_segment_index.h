// SPDX-License-Identifier: MIT
// DmaSegmentIndex: the segments of the mappings a device holds, found by mapping id and by DMA address.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cenalloc/buffer.h>

namespace cenalloc {

/// One segment of a mapping a device holds, with what is needed to reach
/// the buffer's bytes. Immutable once added.
struct DmaSegment {
    uint64_t mappingId = 0;
    uint64_t start = 0;
    uint64_t end = 0; // exclusive
    DmaDirection direction = DmaDirection::Bidirectional;
    std::weak_ptr<Buffer> buffer;
    // Storage chunks, sorted by physical address, with the buffer offset
    // each one starts at; shared by every segment of one mapping.
    std::shared_ptr<const std::vector<std::pair<PhysChunk, uint64_t>>> chunks;
};

/// The segments of every mapping one device holds, indexed so that neither
/// an unmap nor a DMA transfer costs time in the number of other mappings:
/// a client's unmap or transfer must not slow down with what other clients
/// hold on a shared device.
///
/// Segments may overlap (the same memory mapped twice, a shared IOVA mapping
/// on devices sharing a domain). Segments with the same range and direction
/// share one node of an interval treap keyed by (start, end, direction),
/// each node also knowing the largest end in its subtree, so that the nodes
/// containing an address are found in O(log n) plus the number of distinct
/// ranges containing it; within a node segments are kept in the order they
/// were added. A map by mapping id names each mapping's segments, so that an
/// unmap touches its own only.
///
/// Not thread safe: the device's lock guards it.
class DmaSegmentIndex {
public:
    DmaSegmentIndex();
    ~DmaSegmentIndex();
    DmaSegmentIndex(const DmaSegmentIndex&) = delete;
    DmaSegmentIndex& operator=(const DmaSegmentIndex&) = delete;

    /// Adds @p segment to the segments of its mapping, after every segment
    /// added before it.
    void add(std::shared_ptr<const DmaSegment> segment);
    /// Removes every segment of mapping @p mappingId and returns their
    /// ranges in the order they were added; none for an unknown id (then it
    /// changes nothing).
    SgTable remove(uint64_t mappingId);
    /// Mappings with at least one segment here.
    size_t mappingCount() const { return byMapping_.size(); }

    /// Of the segments containing @p address, the one @p rank ranks highest
    /// (an int), the earliest added among equals; null when none contains
    /// it. @p rank sees the earliest added segment of each distinct (start,
    /// end, direction) containing the address.
    template <typename Rank> std::shared_ptr<const DmaSegment> best(uint64_t address, Rank rank) const {
        const Node* chosen = nullptr;
        int chosenRank = 0;
        forEachContaining(root_.get(), address, [&](const Node& node) {
            int r = rank(*node.segments.begin()->second);
            if (!chosen || r > chosenRank ||
                (r == chosenRank && node.segments.begin()->first < chosen->segments.begin()->first)) {
                chosen = &node;
                chosenRank = r;
            }
        });
        return chosen ? chosen->segments.begin()->second : nullptr;
    }

    /// Nodes of the index every operation so far looked at: the cost of
    /// the operations, counted rather than timed (tests and benchmarks).
    uint64_t visits() const { return visits_; }

private:
    struct Key {
        uint64_t start = 0;
        uint64_t end = 0;
        DmaDirection direction = DmaDirection::Bidirectional;
        auto operator<=>(const Key&) const = default;
    };
    struct Node {
        Key key;
        uint64_t priority = 0;                                          // a max-heap on it keeps the tree balanced
        uint64_t maxEnd = 0;                                            // the largest end in this subtree
        std::map<uint64_t, std::shared_ptr<const DmaSegment>> segments; // by order added
        std::unique_ptr<Node> left, right;
    };
    using Tree = std::unique_ptr<Node>;
    // Where a segment is: its node's key and its order.
    using Place = std::pair<Key, uint64_t>;

    template <typename Visit> void forEachContaining(const Node* node, uint64_t address, const Visit& visit) const {
        // A subtree none of whose segments ends past the address holds none
        // containing it; right of a node starting after it, none starts
        // early enough.
        if (!node || node->maxEnd <= address)
            return;
        ++visits_;
        forEachContaining(node->left.get(), address, visit);
        if (node->key.start > address)
            return;
        if (address < node->key.end)
            visit(*node);
        forEachContaining(node->right.get(), address, visit);
    }

    Node* find(const Key& key) const;
    void update(Node& node) const;
    std::pair<Tree, Tree> split(Tree tree, const Key& key, bool inclusive) const;
    Tree merge(Tree left, Tree right) const;
    uint64_t nextPriority();

    Tree root_;
    std::unordered_map<uint64_t, std::vector<Place>> byMapping_;
    uint64_t nextOrder_ = 0;
    uint64_t random_; // xorshift state for priorities
    mutable uint64_t visits_ = 0;
};

} // namespace cenalloc
