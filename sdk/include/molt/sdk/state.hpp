// Versioned state descriptors and their self-describing codec.
//
// A device keeps all migrating state in one plain struct and declares each
// field once, with the descriptor version that introduced it; the same
// declaration drives save and load. Optional state rides in subsections whose
// `needed` predicate decides whether they are sent. Loading is all-or-nothing:
// the stream is decoded into a scratch copy, validated by post_load, and only
// then assigned to the live state.
//
//   const StateDescriptor& uart_descriptor() {
//     static const StateDescriptor d =
//         StateDescriptorBuilder<UartState>("uart-16550a", 2, 1)
//             .field("ier", &UartState::ier)
//             .field("rx_fifo", &UartState::rx_fifo)
//             .field("scratch", &UartState::scr, /*since=*/2)
//             .post_load([](const UartState& s, std::uint32_t) {
//               if (s.rx_count > 16) throw StateError("rx_count", "exceeds the FIFO size 16");
//             })
//             .build();
//     return d;
//   }
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <molt/sdk/error.hpp>

namespace molt::sdk {

// On-the-wire type tags. Values are part of the stream format: never renumber.
enum class WireType : std::uint8_t {
  Bool = 1,
  U8 = 2,
  U16 = 3,
  U32 = 4,
  U64 = 5,
  I64 = 6,
  Bytes = 7,
  String = 8,
  U16Array = 9,
  U32Array = 10,
  U64Array = 11,
  Record = 12,  // a subsection
};

const char* to_string(WireType type);

namespace detail {

template <class T>
struct FieldTraits;

template <class T>
  requires std::is_integral_v<T> && std::is_unsigned_v<T> && (!std::is_same_v<T, bool>)
constexpr WireType unsigned_wire_type() {
  if constexpr (sizeof(T) == 1) return WireType::U8;
  if constexpr (sizeof(T) == 2) return WireType::U16;
  if constexpr (sizeof(T) == 4) return WireType::U32;
  return WireType::U64;
}

inline void put_le(std::vector<std::uint8_t>& out, std::uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline std::uint64_t get_le(const std::uint8_t* p, unsigned bytes) {
  std::uint64_t v = 0;
  for (unsigned i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}
[[noreturn]] void throw_length(std::size_t got, std::size_t want);

template <>
struct FieldTraits<bool> {
  static constexpr WireType wire = WireType::Bool;
  static void encode(const bool& v, std::vector<std::uint8_t>& out) { out.push_back(v ? 1 : 0); }
  static void decode(std::span<const std::uint8_t> in, bool& v) {
    if (in.size() != 1) throw_length(in.size(), 1);
    if (in[0] > 1) throw StateError("", "a bool holds " + std::to_string(in[0]));
    v = in[0] == 1;
  }
};

template <class T>
  requires std::is_integral_v<T> && std::is_unsigned_v<T> && (!std::is_same_v<T, bool>)
struct FieldTraits<T> {
  static constexpr WireType wire = unsigned_wire_type<T>();
  static void encode(const T& v, std::vector<std::uint8_t>& out) { put_le(out, v, sizeof(T)); }
  static void decode(std::span<const std::uint8_t> in, T& v) {
    if (in.size() != sizeof(T)) throw_length(in.size(), sizeof(T));
    v = static_cast<T>(get_le(in.data(), sizeof(T)));
  }
};

template <class T>
  requires std::is_integral_v<T> && std::is_signed_v<T>
struct FieldTraits<T> {
  static constexpr WireType wire = WireType::I64;
  static void encode(const T& v, std::vector<std::uint8_t>& out) {
    put_le(out, static_cast<std::uint64_t>(static_cast<std::int64_t>(v)), 8);
  }
  static void decode(std::span<const std::uint8_t> in, T& v) {
    if (in.size() != 8) throw_length(in.size(), 8);
    auto wide = static_cast<std::int64_t>(get_le(in.data(), 8));
    if (wide < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        wide > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
      throw StateError("", "value " + std::to_string(wide) + " does not fit the field");
    v = static_cast<T>(wide);
  }
};

template <class E>
  requires std::is_enum_v<E>
struct FieldTraits<E> {
  using U = std::make_unsigned_t<std::underlying_type_t<E>>;
  static constexpr WireType wire = FieldTraits<U>::wire;
  static void encode(const E& v, std::vector<std::uint8_t>& out) {
    FieldTraits<U>::encode(static_cast<U>(v), out);
  }
  // Range checks of enum values belong in the descriptor's post_load.
  static void decode(std::span<const std::uint8_t> in, E& v) {
    U u{};
    FieldTraits<U>::decode(in, u);
    v = static_cast<E>(u);
  }
};

template <>
struct FieldTraits<std::string> {
  static constexpr WireType wire = WireType::String;
  static void encode(const std::string& v, std::vector<std::uint8_t>& out) {
    out.insert(out.end(), v.begin(), v.end());
  }
  static void decode(std::span<const std::uint8_t> in, std::string& v) { v.assign(in.begin(), in.end()); }
};

template <class T>
constexpr WireType array_wire_type() {
  if constexpr (sizeof(T) == 1) return WireType::Bytes;
  if constexpr (sizeof(T) == 2) return WireType::U16Array;
  if constexpr (sizeof(T) == 4) return WireType::U32Array;
  return WireType::U64Array;
}

template <class T>
concept ArrayElement = std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>;

template <ArrayElement T, std::size_t N>
struct FieldTraits<std::array<T, N>> {
  static constexpr WireType wire = array_wire_type<T>();
  static void encode(const std::array<T, N>& v, std::vector<std::uint8_t>& out) {
    for (const T& e : v) put_le(out, e, sizeof(T));
  }
  static void decode(std::span<const std::uint8_t> in, std::array<T, N>& v) {
    if (in.size() != N * sizeof(T)) throw_length(in.size(), N * sizeof(T));
    for (std::size_t i = 0; i < N; ++i) v[i] = static_cast<T>(get_le(in.data() + i * sizeof(T), sizeof(T)));
  }
};

template <ArrayElement T>
struct FieldTraits<std::vector<T>> {
  static constexpr WireType wire = array_wire_type<T>();
  static void encode(const std::vector<T>& v, std::vector<std::uint8_t>& out) {
    for (const T& e : v) put_le(out, e, sizeof(T));
  }
  static void decode(std::span<const std::uint8_t> in, std::vector<T>& v) {
    if (in.size() % sizeof(T) != 0) throw_length(in.size(), in.size() / sizeof(T) * sizeof(T));
    v.resize(in.size() / sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<T>(get_le(in.data() + i * sizeof(T), sizeof(T)));
  }
};

}  // namespace detail

// One declared field, type-erased over the owning State struct.
struct FieldSpec {
  std::string name;
  WireType type;
  std::uint32_t since_version;
  std::function<void(const void* state, std::vector<std::uint8_t>& out)> encode;
  // Throws StateError (field name filled in by the codec) on a bad payload.
  std::function<void(std::span<const std::uint8_t> payload, void* state)> decode;
};

class StateDescriptor;

struct SubsectionSpec {
  const StateDescriptor* descriptor;
  std::function<const void*(const void* parent)> member;
  std::function<void*(void* parent)> mutable_member;
  std::function<bool(const void* parent)> needed;
};

class StateDescriptor {
 public:
  const std::string& name() const { return name_; }
  std::uint32_t version() const { return version_; }
  std::uint32_t minimum_version() const { return minimum_version_; }
  const std::vector<FieldSpec>& fields() const { return fields_; }
  const std::vector<SubsectionSpec>& subsections() const { return subsections_; }

  // Type-erased hooks built from the typed builder.
  std::function<void(void* state)> pre_save;  // may be empty
  std::function<void(const void* state, std::uint32_t loaded_version)> post_load;  // may be empty
  std::function<std::shared_ptr<void>(const void* state)> clone;
  std::function<void(void* dst, const void* src)> assign;

 private:
  template <class S>
  friend class StateDescriptorBuilder;
  std::string name_;
  std::uint32_t version_ = 1;
  std::uint32_t minimum_version_ = 1;
  std::vector<FieldSpec> fields_;
  std::vector<SubsectionSpec> subsections_;
};

template <class S>
class StateDescriptorBuilder {
 public:
  StateDescriptorBuilder(std::string name, std::uint32_t version, std::uint32_t minimum_version = 1) {
    d_.name_ = std::move(name);
    d_.version_ = version;
    d_.minimum_version_ = minimum_version;
    d_.clone = [](const void* s) -> std::shared_ptr<void> {
      return std::make_shared<S>(*static_cast<const S*>(s));
    };
    d_.assign = [](void* dst, const void* src) { *static_cast<S*>(dst) = *static_cast<const S*>(src); };
  }

  template <class T>
  StateDescriptorBuilder& field(std::string name, T S::*member, std::uint32_t since = 1) {
    using Traits = detail::FieldTraits<T>;
    d_.fields_.push_back(FieldSpec{
        std::move(name), Traits::wire, since,
        [member](const void* s, std::vector<std::uint8_t>& out) {
          Traits::encode(static_cast<const S*>(s)->*member, out);
        },
        [member](std::span<const std::uint8_t> in, void* s) { Traits::decode(in, static_cast<S*>(s)->*member); }});
    return *this;
  }

  template <class Sub>
  StateDescriptorBuilder& subsection(const StateDescriptor& sub, Sub S::*member,
                                     std::function<bool(const S&)> needed) {
    d_.subsections_.push_back(SubsectionSpec{
        &sub, [member](const void* p) -> const void* { return &(static_cast<const S*>(p)->*member); },
        [member](void* p) -> void* { return &(static_cast<S*>(p)->*member); },
        [needed = std::move(needed)](const void* p) { return needed(*static_cast<const S*>(p)); }});
    return *this;
  }

  StateDescriptorBuilder& pre_save(std::function<void(S&)> hook) {
    d_.pre_save = [hook = std::move(hook)](void* s) { hook(*static_cast<S*>(s)); };
    return *this;
  }

  // Validate every index, length and enum of a loaded state; throw StateError
  // naming the field. Runs on a scratch copy before the live state changes.
  StateDescriptorBuilder& post_load(std::function<void(const S&, std::uint32_t loaded_version)> hook) {
    d_.post_load = [hook = std::move(hook)](const void* s, std::uint32_t v) { hook(*static_cast<const S*>(s), v); };
    return *this;
  }

  StateDescriptor build() { return std::move(d_); }

 private:
  StateDescriptor d_;
};

// ---- The codec (sdk/src/state_codec.cpp; format in docs/state-format.md) ----

// Encodes one state record: descriptor name and version, then every field with
// its name, wire type and length, then the needed subsections. Runs pre_save.
std::vector<std::uint8_t> save_state(const StateDescriptor& descriptor, void* state);

// Decodes a record into `state`. All-or-nothing: on any error `state` is left
// unchanged and StateError names the descriptor path and field ("uart-16550a.ier").
// Accepts records whose version is in [minimum_version, version]; fields
// introduced after the record's version keep the values `state` had.
void load_state(const StateDescriptor& descriptor, void* state, std::span<const std::uint8_t> record);

// A record decoded without its descriptor, for dumps and diagnostics.
struct DecodedField {
  std::string name;
  WireType type;
  std::vector<std::uint8_t> payload;  // for Record: empty; see `record`
  std::shared_ptr<struct DecodedRecord> record;
};
struct DecodedRecord {
  std::string name;
  std::uint32_t version = 0;
  std::vector<DecodedField> fields;
};
// Throws StateError on a truncated or malformed record.
DecodedRecord decode_record(std::span<const std::uint8_t> record);

}  // namespace molt::sdk
