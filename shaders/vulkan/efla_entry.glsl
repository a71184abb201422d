// Finding the entry (sequence segment) a piece chunk belongs to. Requires
// efla_common.glsl.

// The entry holding piece chunk `chunk` (entries are sorted by chunk_base).
uint find_entry(uint chunk) {
    uint lo = 0u, hi = pc.entry_count - 1u;
    while (lo < hi) {
        uint mid = (lo + hi + 1u) / 2u;
        if (entries[mid].chunk_base <= chunk) lo = mid;
        else hi = mid - 1u;
    }
    return lo;
}
