// An ordered int64 -> int64 map for one side of an L2 book: a price-indexed ladder.
//
// Levels whose keys lie in a dense window [lo, lo + cap) live in a flat array of
// values (0: no level) with a two-level bitmap over it (a bit per slot, a bit per
// bitmap word), so setting a level is an array write and two bit flips, and the
// next level after any slot is found with a few word scans; the smallest key is
// cached. Keys that would make the window too sparse (a venue whose prices sit far
// apart in its units, a stray level far from the rest) live in two ordered maps
// beside it, one below the window and one above, so the map stays exact whatever
// the keys are and only loses speed where the prices are sparse. The window is
// placed around the first key, and re-placed or grown (within ``kMaxCap`` slots
// and a density bound) when a key lands outside it; the live keys it covers move
// with it, and map keys the new window covers move in. Iteration is in key order:
// the lower map, the window, the upper map.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

class Ladder {
 public:
  static constexpr std::size_t kMinCap = 64;      // slots of the smallest window
  static constexpr std::size_t kBaseSpan = 256;   // a span any window may cover
  static constexpr std::size_t kMaxCap = std::size_t(1) << 20;  // 8 MiB of values
  // The window covers at most this many slots per level it holds (beyond kBaseSpan), and
  // its capacity is 1.5-3x the span it covers: at most ~24 slots, ~200 bytes, a level.
  static constexpr std::size_t kSlotsPerLevel = 8;

  class Cursor {
   public:
    Cursor() : l_(nullptr), phase_(3), idx_(0) {}
    explicit Cursor(const Ladder* l) : l_(l), phase_(0), it_(l->below_.begin()), idx_(0) {
      settle();
    }
    bool done() const { return phase_ == 3; }
    int64_t key() const {
      return phase_ == 1 ? l_->lo_ + static_cast<int64_t>(idx_) : it_->first;
    }
    int64_t value() const { return phase_ == 1 ? l_->vals_[idx_] : it_->second; }
    void next() {
      if (phase_ == 1) {
        idx_ = l_->next_set(idx_ + 1);
      } else {
        ++it_;
      }
      settle();
    }

   private:
    void settle() {  // on to the next part while this one has nothing left
      if (phase_ == 0 && it_ == l_->below_.end()) {
        phase_ = 1;
        idx_ = l_->min_;
      }
      if (phase_ == 1 && idx_ >= l_->cap_) {
        phase_ = 2;
        it_ = l_->above_.begin();
      }
      if (phase_ == 2 && it_ == l_->above_.end()) phase_ = 3;
    }
    const Ladder* l_;
    int phase_;  // 0 lower map, 1 window, 2 upper map, 3 done
    std::map<int64_t, int64_t>::const_iterator it_;
    std::size_t idx_;
  };

  bool empty() const { return size() == 0; }
  std::size_t size() const { return count_ + below_.size() + above_.size(); }
  Cursor begin() const { return Cursor(this); }

  // The smallest key and its value; only when not empty.
  int64_t first_key() const {
    if (!below_.empty()) return below_.begin()->first;
    if (count_) return lo_ + static_cast<int64_t>(min_);
    return above_.begin()->first;
  }
  int64_t first_value() const {
    if (!below_.empty()) return below_.begin()->second;
    if (count_) return vals_[min_];
    return above_.begin()->second;
  }

  // The value at key, 0 when absent (values stored are never 0).
  int64_t get(int64_t key) const {
    std::size_t i = 0;
    if (in_window(key, &i)) return vals_[i];
    const std::map<int64_t, int64_t>& m = key < lo_ ? below_ : above_;
    auto it = m.find(key);
    return it == m.end() ? 0 : it->second;
  }

  // Set key to value (0 removes it); returns the value it had (0: none).
  int64_t set(int64_t key, int64_t value) {
    std::size_t i = 0;
    if (in_window(key, &i)) {
      int64_t old = vals_[i];
      if (value == 0) {
        if (old != 0) {
          vals_[i] = 0;
          unmark(i);
        }
        return old;
      }
      if (old == 0) mark(i);
      vals_[i] = value;
      return old;
    }
    std::map<int64_t, int64_t>& m = key < lo_ ? below_ : above_;
    auto it = m.lower_bound(key);
    if (it != m.end() && it->first == key) {
      int64_t old = it->second;
      if (value == 0) {
        m.erase(it);
      } else {
        it->second = value;
      }
      return old;
    }
    if (value == 0) return 0;
    if (place(key)) {  // the window moved to cover it (the maps may have changed)
      in_window(key, &i);
      mark(i);
      vals_[i] = value;
    } else {
      m.emplace_hint(it, key, value);
    }
    return 0;
  }

  void clear() {
    below_.clear();
    above_.clear();
    if (count_) {
      std::fill(vals_.begin(), vals_.end(), 0);
      std::fill(bits_.begin(), bits_.end(), 0);
      std::fill(sum_.begin(), sum_.end(), 0);
    }
    count_ = 0;
    min_ = cap_;
  }

 private:
  bool in_window(int64_t key, std::size_t* i) const {
    uint64_t off = static_cast<uint64_t>(key) - static_cast<uint64_t>(lo_);
    if (cap_ == 0 || key < lo_ || off >= cap_) return false;
    *i = static_cast<std::size_t>(off);
    return true;
  }

  void mark(std::size_t i) {
    std::size_t w = i >> 6;
    if (bits_[w] == 0) sum_[w >> 6] |= uint64_t(1) << (w & 63);
    bits_[w] |= uint64_t(1) << (i & 63);
    if (count_ == 0 || i < min_) min_ = i;
    ++count_;
  }

  void unmark(std::size_t i) {
    std::size_t w = i >> 6;
    bits_[w] &= ~(uint64_t(1) << (i & 63));
    if (bits_[w] == 0) sum_[w >> 6] &= ~(uint64_t(1) << (w & 63));
    --count_;
    if (i == min_) min_ = count_ ? next_set(i + 1) : cap_;
  }

  // The first set slot at or after i, or cap_ when none.
  std::size_t next_set(std::size_t i) const {
    if (i >= cap_) return cap_;
    std::size_t w = i >> 6;
    uint64_t word = bits_[w] & (~uint64_t(0) << (i & 63));
    if (word) return (w << 6) + __builtin_ctzll(word);
    std::size_t s = (w + 1) >> 6;
    if (s >= sum_.size()) return cap_;
    uint64_t summary = ((w + 1) & 63) ? sum_[s] & (~uint64_t(0) << ((w + 1) & 63)) : sum_[s];
    for (;;) {
      if (summary) {
        std::size_t ww = (s << 6) + __builtin_ctzll(summary);
        return (ww << 6) + __builtin_ctzll(bits_[ww]);
      }
      if (++s >= sum_.size()) return cap_;
      summary = sum_[s];
    }
  }

  // The last set slot, or cap_ when none.
  std::size_t last_set() const {
    for (std::size_t s = sum_.size(); s-- > 0;) {
      if (sum_[s]) {
        std::size_t ww = (s << 6) + 63 - __builtin_clzll(sum_[s]);
        return (ww << 6) + 63 - __builtin_clzll(bits_[ww]);
      }
    }
    return cap_;
  }

  // Place (or re-place) the window so that it covers key and every key it holds now;
  // false when that would need more than kMaxCap slots or be too sparse.
  bool place(int64_t key) {
    std::size_t limit = kBaseSpan + kSlotsPerLevel * (count_ + 1);
    if (count_ && cap_) {  // far from the window is farther from every key in it
      __int128 edge = key < lo_ ? static_cast<__int128>(lo_) - key
                                : static_cast<__int128>(key) - lo_ - static_cast<__int128>(cap_);
      if (edge >= static_cast<__int128>(limit)) return false;
    }
    __int128 low = key, high = key;  // the keys to cover, inclusive
    if (count_) {
      __int128 a = static_cast<__int128>(lo_) + static_cast<__int128>(min_);
      __int128 b = static_cast<__int128>(lo_) + static_cast<__int128>(last_set());
      if (a < low) low = a;
      if (b > high) high = b;
    }
    __int128 span = high - low + 1;
    if (span > static_cast<__int128>(kMaxCap / 3 * 2) || span > static_cast<__int128>(limit)) {
      return false;
    }
    std::size_t cap = kMinCap;
    while (static_cast<__int128>(cap) < span + span / 2) cap <<= 1;
    // Centre the covered keys, with room on both sides for the book to move.
    __int128 start = low - (static_cast<__int128>(cap) - span) / 2;
    __int128 lowest = INT64_MIN, highest = static_cast<__int128>(INT64_MAX) - cap + 1;
    if (start < lowest) start = lowest;
    if (start > highest) start = highest;
    rebuild(static_cast<int64_t>(start), cap);
    return true;
  }

  void rebuild(int64_t lo, std::size_t cap) {
    std::vector<std::pair<int64_t, int64_t>> live;
    live.reserve(count_);
    for (std::size_t i = min_; i < cap_; i = next_set(i + 1)) {
      live.emplace_back(lo_ + static_cast<int64_t>(i), vals_[i]);
    }
    lo_ = lo;
    cap_ = cap;
    vals_.assign(cap, 0);
    bits_.assign(cap >> 6, 0);
    sum_.assign((cap + 4095) >> 12, 0);
    count_ = 0;
    min_ = cap;
    std::size_t i = 0;
    for (const auto& kv : live) {  // the window covers them all (place)
      in_window(kv.first, &i);
      mark(i);
      vals_[i] = kv.second;
    }
    int64_t hi = lo_ + static_cast<int64_t>(cap_ - 1);
    move_in(&below_, hi);
    move_in(&above_, hi);
    // What stays in the maps is outside the window: each key to the map of its side.
    for (auto it = below_.upper_bound(hi); it != below_.end();) {
      above_.insert(*it);
      it = below_.erase(it);
    }
    for (auto it = above_.begin(); it != above_.end() && it->first < lo_;) {
      below_.insert(*it);
      it = above_.erase(it);
    }
  }

  // Move the map's keys in [lo_, hi] into the window.
  void move_in(std::map<int64_t, int64_t>* m, int64_t hi) {
    std::size_t i = 0;
    for (auto it = m->lower_bound(lo_); it != m->end() && it->first <= hi;) {
      in_window(it->first, &i);
      mark(i);
      vals_[i] = it->second;
      it = m->erase(it);
    }
  }

  int64_t lo_ = 0;
  std::size_t cap_ = 0;
  std::size_t count_ = 0;  // levels in the window
  std::size_t min_ = 0;    // the window's first set slot (cap_ when none)
  std::vector<int64_t> vals_;
  std::vector<uint64_t> bits_;
  std::vector<uint64_t> sum_;
  std::map<int64_t, int64_t> below_;  // keys < lo_
  std::map<int64_t, int64_t> above_;  // keys >= lo_ + cap_
};
