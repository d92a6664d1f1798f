// SPDX-License-Identifier: MIT
// The index of a device's mapped segments: an interval treap by range, and a map by mapping id.
#include "core/dma_segment_index.h"

#include <algorithm>
#include <random>

namespace cenalloc {

DmaSegmentIndex::DmaSegmentIndex() {
    // Priorities nobody can predict, so that no order of mappings a client
    // can bring about unbalances the tree. Xorshift needs a nonzero state.
    std::random_device device;
    random_ = (uint64_t{device()} << 32 | device()) | 1;
}

DmaSegmentIndex::~DmaSegmentIndex() {
    // Destroy iteratively: a node's destructor destroys its subtrees.
    std::vector<Tree> pending;
    pending.push_back(std::move(root_));
    while (!pending.empty()) {
        Tree node = std::move(pending.back());
        pending.pop_back();
        if (!node)
            continue;
        pending.push_back(std::move(node->left));
        pending.push_back(std::move(node->right));
    }
}

uint64_t DmaSegmentIndex::nextPriority() {
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    return random_;
}

void DmaSegmentIndex::update(Node& node) const {
    ++visits_;
    node.maxEnd = node.key.end;
    if (node.left)
        node.maxEnd = std::max(node.maxEnd, node.left->maxEnd);
    if (node.right)
        node.maxEnd = std::max(node.maxEnd, node.right->maxEnd);
}

std::pair<DmaSegmentIndex::Tree, DmaSegmentIndex::Tree> DmaSegmentIndex::split(Tree tree, const Key& key,
                                                                               bool inclusive) const {
    // Keys below @p key (and equal to it when inclusive) go left.
    if (!tree)
        return {};
    const bool goesLeft = inclusive ? tree->key <= key : tree->key < key;
    if (goesLeft) {
        auto [left, right] = split(std::move(tree->right), key, inclusive);
        tree->right = std::move(left);
        update(*tree);
        return {std::move(tree), std::move(right)};
    }
    auto [left, right] = split(std::move(tree->left), key, inclusive);
    tree->left = std::move(right);
    update(*tree);
    return {std::move(left), std::move(tree)};
}

DmaSegmentIndex::Tree DmaSegmentIndex::merge(Tree left, Tree right) const {
    // Every key of @p left is below every key of @p right.
    if (!left)
        return right;
    if (!right)
        return left;
    if (left->priority > right->priority) {
        left->right = merge(std::move(left->right), std::move(right));
        update(*left);
        return left;
    }
    right->left = merge(std::move(left), std::move(right->left));
    update(*right);
    return right;
}

DmaSegmentIndex::Node* DmaSegmentIndex::find(const Key& key) const {
    Node* node = root_.get();
    while (node && node->key != key) {
        ++visits_;
        node = key < node->key ? node->left.get() : node->right.get();
    }
    return node;
}

void DmaSegmentIndex::add(std::shared_ptr<const DmaSegment> segment) {
    const Key key{segment->start, segment->end, segment->direction};
    const uint64_t order = nextOrder_++;
    byMapping_[segment->mappingId].push_back({key, order});
    if (Node* node = find(key)) {
        node->segments.emplace(order, std::move(segment));
        return;
    }
    auto node = std::make_unique<Node>();
    node->key = key;
    node->priority = nextPriority();
    node->maxEnd = key.end;
    node->segments.emplace(order, std::move(segment));
    auto [left, right] = split(std::move(root_), key, false);
    root_ = merge(merge(std::move(left), std::move(node)), std::move(right));
}

SgTable DmaSegmentIndex::remove(uint64_t mappingId) {
    SgTable ranges;
    auto it = byMapping_.find(mappingId);
    if (it == byMapping_.end())
        return ranges;
    for (const auto& [key, order] : it->second) {
        ranges.push_back({key.start, key.end - key.start});
        Node* node = find(key);
        node->segments.erase(order);
        if (!node->segments.empty())
            continue;
        auto [left, rest] = split(std::move(root_), key, false);
        auto [gone, right] = split(std::move(rest), key, true);
        root_ = merge(std::move(left), std::move(right));
    }
    byMapping_.erase(it);
    return ranges;
}

} // namespace cenalloc
