// Open-addressing hash map from int64 keys to inline values, for the book core.
//
// Linear probing with Fibonacci hashing; deletion by backward shift (no
// tombstones), so lookups stay short however many orders come and go.
// Values live in the table itself: one cache line per lookup, no allocation
// per insert. Pointers returned by find/put are valid until the next put or
// erase (either may move entries); callers copy what they need first.
// The key INT64_MIN marks an empty slot and cannot be stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

template <typename V>
class FlatMap {
 public:
  static constexpr int64_t EMPTY = INT64_MIN;

  FlatMap() { init(16); }

  V* find(int64_t key) noexcept {
    std::size_t i = home(key);
    for (;;) {
      Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == EMPTY) return nullptr;
      i = (i + 1) & mask_;
    }
  }

  bool contains(int64_t key) noexcept { return find(key) != nullptr; }

  // Insert or overwrite; returns the stored value.
  V* put(int64_t key, const V& value) {
    if ((size_ + 1) * 10 > slots_.size() * 7) grow();
    std::size_t i = home(key);
    for (;;) {
      Slot& s = slots_[i];
      if (s.key == key) {
        s.value = value;
        return &s.value;
      }
      if (s.key == EMPTY) {
        s.key = key;
        s.value = value;
        ++size_;
        return &s.value;
      }
      i = (i + 1) & mask_;
    }
  }

  bool erase(int64_t key) noexcept {
    std::size_t i = home(key);
    for (;;) {
      if (slots_[i].key == EMPTY) return false;
      if (slots_[i].key == key) break;
      i = (i + 1) & mask_;
    }
    std::size_t j = i;
    for (;;) {
      j = (j + 1) & mask_;
      if (slots_[j].key == EMPTY) break;
      std::size_t h = home(slots_[j].key);
      bool stays = (i <= j) ? (i < h && h <= j) : (h > i || h <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].key = EMPTY;
    --size_;
    return true;
  }

  void reserve(std::size_t n) {
    while (n * 10 > slots_.size() * 7) grow();
  }

  void clear() {
    for (Slot& s : slots_) s.key = EMPTY;
    size_ = 0;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  // Index-based iteration (unspecified order): slots 0..capacity()-1.
  std::size_t capacity() const noexcept { return slots_.size(); }
  int64_t key_at(std::size_t i) const noexcept { return slots_[i].key; }
  V* value_at(std::size_t i) noexcept { return &slots_[i].value; }

 private:
  struct Slot {
    int64_t key;
    V value;
  };

  std::size_t home(int64_t key) const noexcept {
    return static_cast<std::size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ULL) >> shift_);
  }

  void init(std::size_t capacity) {
    slots_.assign(capacity, Slot{EMPTY, V()});
    mask_ = capacity - 1;
    shift_ = 64;
    for (std::size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
  }

  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    init(old.size() * 2);
    for (const Slot& s : old)
      if (s.key != EMPTY) put(s.key, s.value);
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
  int shift_ = 64;
};
