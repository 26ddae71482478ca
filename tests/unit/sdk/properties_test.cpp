// Property values as devices read them, and the size syntax of machine files.
#include <gtest/gtest.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/properties.hpp>

namespace molt::sdk {
namespace {

TEST(ParseSize, AcceptsPlainHexAndBinaryUnits) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("0x200"), 0x200u);
  EXPECT_EQ(parse_size("0XfF"), 0xffu);
  EXPECT_EQ(parse_size("4K"), 4096u);
  EXPECT_EQ(parse_size("4k"), 4096u);
  EXPECT_EQ(parse_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_size("1T"), 1ull << 40);
  EXPECT_EQ(parse_size("18446744073709551615"), ~0ull);
  EXPECT_EQ(parse_size("0xffffffffffffffff"), ~0ull);
  EXPECT_EQ(parse_size("16777215T"), 16777215ull << 40);
}

TEST(ParseSize, RefusesOverflow) {
  EXPECT_EQ(parse_size("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_size("0x10000000000000000"), std::nullopt);
  EXPECT_EQ(parse_size("16777216T"), std::nullopt);
  EXPECT_EQ(parse_size("17179869184G"), std::nullopt);
}

TEST(ParseSize, RefusesMalformedText) {
  EXPECT_EQ(parse_size(""), std::nullopt);
  EXPECT_EQ(parse_size("M"), std::nullopt);
  EXPECT_EQ(parse_size("512X"), std::nullopt);
  EXPECT_EQ(parse_size("4KB"), std::nullopt);
  EXPECT_EQ(parse_size("0x"), std::nullopt);
  EXPECT_EQ(parse_size("0x10K"), std::nullopt);
  EXPECT_EQ(parse_size("-1"), std::nullopt);
  EXPECT_EQ(parse_size(" 4K"), std::nullopt);
  EXPECT_EQ(parse_size("4 K"), std::nullopt);
}

Properties sample_properties() {
  return Properties({{"enabled", true}, {"irq", std::uint64_t{4}}, {"chardev", std::string("stdio")}});
}

TEST(Properties, GettersReturnTypedValues) {
  const Properties p = sample_properties();
  EXPECT_TRUE(p.has("irq"));
  EXPECT_FALSE(p.has("iobase"));
  EXPECT_TRUE(p.get_bool("enabled"));
  EXPECT_EQ(p.get_uint("irq"), 4u);
  EXPECT_EQ(p.get_string("chardev"), "stdio");
  EXPECT_EQ(p.values().size(), 3u);
}

TEST(Properties, SetReplacesAValue) {
  Properties p = sample_properties();
  p.set("irq", std::uint64_t{3});
  p.set("iobase", std::uint64_t{0x2f8});
  EXPECT_EQ(p.get_uint("irq"), 3u);
  EXPECT_EQ(p.get_uint("iobase"), 0x2f8u);
}

TEST(Properties, MissingOrMistypedPropertiesThrowNamingThem) {
  const Properties p = sample_properties();
  try {
    p.get_uint("iobase");
    FAIL() << "a missing property was read";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "property 'iobase' is not set; declare it in the device type");
  }
  EXPECT_THROW(p.get_bool("irq"), Error);
  EXPECT_THROW(p.get_uint("chardev"), Error);
  EXPECT_THROW(p.get_string("enabled"), Error);
}

TEST(Properties, ValuesAndTypesRenderForMessages) {
  EXPECT_EQ(to_string(PropertyValue{true}), "true");
  EXPECT_EQ(to_string(PropertyValue{false}), "false");
  EXPECT_EQ(to_string(PropertyValue{std::uint64_t{4096}}), "4096");
  EXPECT_EQ(to_string(PropertyValue{std::string("stdio")}), "\"stdio\"");
  EXPECT_STREQ(to_string(PropertyType::Bool), "bool");
  EXPECT_STREQ(to_string(PropertyType::UInt), "unsigned integer");
  EXPECT_STREQ(to_string(PropertyType::Size), "size");
  EXPECT_STREQ(to_string(PropertyType::String), "string");
  EXPECT_STREQ(to_string(PropertyType::Enum), "enum");
}

}  // namespace
}  // namespace molt::sdk
