#include <gtest/gtest.h>

#include <memory>

#include <molt/sdk/error.hpp>
#include <molt/sdk/testing/fake_bus.hpp>

#include "debug_exit.hpp"

namespace molt::debug_exit {
namespace {

using sdk::ExitReason;
using sdk::testing::FakeMachine;

class DebugExitTest : public ::testing::Test {
 protected:
  void make(std::uint64_t iobase = 0xf4, std::uint64_t width = 4) {
    const sdk::DeviceType& type = describe_debug_exit_plugin()->device_types.at(0);
    sdk::Properties props;
    for (const sdk::PropertySpec& spec : type.properties) props.set(spec.name, *spec.default_value);
    props.set("iobase", iobase);
    props.set("width", width);
    device_ = type.create(machine_.add_context("exit0", props));
    device_->realize();
    device_->reset();
  }
  std::optional<std::pair<ExitReason, int>> exit_request() const { return machine_.exit_request(); }

  FakeMachine machine_;
  std::unique_ptr<sdk::Device> device_;
};

TEST_F(DebugExitTest, TypeAndDefaults) {
  const sdk::DeviceType& type = describe_debug_exit_plugin()->device_types.at(0);
  EXPECT_EQ(type.name, "debug-exit");
  ASSERT_EQ(type.properties.size(), 2u);
  EXPECT_EQ(type.properties[0].name, "iobase");
  EXPECT_EQ(std::get<std::uint64_t>(*type.properties[0].default_value), 0xf4u);
  EXPECT_EQ(type.properties[1].name, "width");
  EXPECT_EQ(std::get<std::uint64_t>(*type.properties[1].default_value), 4u);
}

TEST_F(DebugExitTest, NothingHappensUntilAWrite) {
  make();
  EXPECT_EQ(machine_.bus().io_read(0xf4, 4), 0u);
  EXPECT_EQ(machine_.bus().io_read(0xf4, 1), 0u);
  EXPECT_FALSE(exit_request().has_value());
}

TEST_F(DebugExitTest, WriteRequestsExitWithTheValue) {
  make();
  machine_.bus().io_write(0xf4, 4, 0x10);
  ASSERT_TRUE(exit_request().has_value());
  EXPECT_EQ(exit_request()->first, ExitReason::DebugExit);
  EXPECT_EQ(exit_request()->second, 0x10);
}

TEST_F(DebugExitTest, ValueIsMaskedToSevenBits) {
  make();
  machine_.bus().io_write(0xf4, 4, 0x12345685);
  ASSERT_TRUE(exit_request().has_value());
  EXPECT_EQ(exit_request()->second, 0x05);
  machine_.bus().io_write(0xf4, 1, 0x7f);
  EXPECT_EQ(exit_request()->second, 0x7f);
}

TEST_F(DebugExitTest, ByteWriteInsideAFourByteFourPortRangeCounts) {
  make();
  machine_.bus().io_write(0xf7, 1, 3);
  ASSERT_TRUE(exit_request().has_value());
  EXPECT_EQ(exit_request()->second, 3);
}

TEST_F(DebugExitTest, WidthOneClaimsOnePort) {
  make(0x501, 1);
  machine_.bus().io_write(0x502, 1, 9);
  EXPECT_FALSE(exit_request().has_value()) << "0x502 is beyond a 1-byte port";
  EXPECT_EQ(machine_.bus().io_read(0x502, 1), 0xffu);
  machine_.bus().io_write(0x501, 1, 9);
  ASSERT_TRUE(exit_request().has_value());
  EXPECT_EQ(exit_request()->second, 9);
}

TEST_F(DebugExitTest, WidthTwoClaimsTwoPorts) {
  make(0x600, 2);
  EXPECT_EQ(machine_.bus().io_read(0x602, 1), 0xffu);
  machine_.bus().io_write(0x600, 2, 0x0102);
  ASSERT_TRUE(exit_request().has_value());
  EXPECT_EQ(exit_request()->second, 0x02);
}

TEST_F(DebugExitTest, RefusesWidthThreeAndPortsPastTheTop) {
  EXPECT_THROW(make(0xf4, 3), sdk::Error);
  EXPECT_THROW(make(0xf4, 8), sdk::Error);
  EXPECT_THROW(make(0xfffe, 4), sdk::Error);
  EXPECT_NO_THROW(make(0xfffc, 4));
}

TEST_F(DebugExitTest, StatelessAndMigratable) {
  make();
  const sdk::StateBinding binding = device_->state();
  EXPECT_EQ(binding.descriptor, nullptr);
  EXPECT_TRUE(binding.migratable());
  EXPECT_NE(binding.stateless_reason.find("holds no value"), std::string::npos) << binding.stateless_reason;
}

}  // namespace
}  // namespace molt::debug_exit
