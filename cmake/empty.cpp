// SPDX-License-Identifier: MIT
// Placeholder translation unit for a layer that has no sources yet.
