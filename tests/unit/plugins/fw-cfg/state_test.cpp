// The "fw-cfg" state descriptor: round trip, the frozen version 1 record, and
// loads refused with the field named.
#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "fw_cfg_fixture.hpp"

namespace molt::fw_cfg::test {
namespace {

class FwCfgStateTest : public FwCfgTest {
 protected:
  FwCfgDevice& make_destination() {
    auto& ctx = destination_machine_.add_context("fwcfg", default_properties());
    destination_ = std::make_unique<FwCfgDevice>(ctx, ContentOptions{});
    destination_->realize();
    destination_->reset();
    return *destination_;
  }
  std::vector<std::uint8_t> save() {
    device_->pre_save();
    const sdk::StateBinding binding = device_->state();
    return sdk::save_state(*binding.descriptor, binding.state);
  }
  void load(const std::vector<std::uint8_t>& record) {
    const sdk::StateBinding binding = destination_->state();
    sdk::load_state(*binding.descriptor, binding.state, record);
    destination_->post_load();
  }
  std::vector<std::uint8_t> record_of(const FwCfgState& s) {
    FwCfgState copy = s;
    return sdk::save_state(device_->descriptor(), &copy);
  }

  FakeMachine destination_machine_;
  std::unique_ptr<FwCfgDevice> destination_;
};

TEST_F(FwCfgStateTest, DescriptorIsNamedAndVersioned) {
  make();
  const sdk::StateBinding binding = device_->state();
  ASSERT_NE(binding.descriptor, nullptr);
  EXPECT_EQ(binding.descriptor->name(), "fw-cfg");
  EXPECT_EQ(binding.descriptor->version(), 1u);
  EXPECT_EQ(binding.state, &device_->current());
}

TEST_F(FwCfgStateTest, MidReadRoundTripContinuesOnTheDestination) {
  make();
  machine_.bus().io_write(kDmaHigh, 4, __builtin_bswap32(0x1));
  select(kSignature);
  read_data(2);
  describe_small_machine(destination_machine_);
  make_destination();
  load(save());
  EXPECT_EQ(destination_->current(), device_->current());
  EXPECT_EQ(destination_machine_.bus().io_read(kData, 1), 'M');
  EXPECT_EQ(destination_->current().dma_address_high, 1u);
}

TEST_F(FwCfgStateTest, OtherContentsAreRefused) {
  make();
  describe_small_machine(destination_machine_);
  destination_machine_.info().vcpus = 4;
  make_destination();
  try {
    load(save());
    FAIL() << "loaded state from a machine with other contents";
  } catch (const sdk::StateError& e) {
    EXPECT_EQ(e.field(), "fw-cfg.contents_digest");
  }
  EXPECT_EQ(destination_->current().contents_digest, destination_->items().digest());
}

TEST_F(FwCfgStateTest, OffsetPastTheItemIsRefused) {
  make();
  describe_small_machine(destination_machine_);
  make_destination();
  FwCfgState bad{.selector = kNbCpus, .offset = 3, .contents_digest = device_->items().digest()};
  try {
    load(record_of(bad));
    FAIL() << "loaded an offset past the end";
  } catch (const sdk::StateError& e) {
    EXPECT_EQ(e.field(), "fw-cfg.offset");
  }
  bad.selector = 0x1234;  // no such item: only offset 0 is possible
  bad.offset = 1;
  EXPECT_THROW(load(record_of(bad)), sdk::StateError);
  bad.offset = 0;
  load(record_of(bad));
  EXPECT_EQ(destination_->current().selector, 0x1234u);
}

// The version 1 record as released. Frozen: never regenerate it.
const std::vector<std::uint8_t> kGoldenV1 = {
#include "golden_v1.inc"
};

TEST_F(FwCfgStateTest, GoldenVersion1Loads) {
  make();
  describe_small_machine(destination_machine_);
  make_destination();
  const FwCfgState golden{.selector = kFileDir,
                          .offset = 68,
                          .dma_address_high = 0x01020304,
                          .contents_digest = 0x1122334455667788ull};
  ASSERT_EQ(record_of(golden), kGoldenV1) << "the version 1 encoding changed";
  // The digest in the frozen record is not this machine's: the load is refused
  // on contents, after every field decoded.
  try {
    load(kGoldenV1);
    FAIL();
  } catch (const sdk::StateError& e) {
    EXPECT_EQ(e.field(), "fw-cfg.contents_digest");
  }
  const sdk::DecodedRecord decoded = sdk::decode_record(kGoldenV1);
  EXPECT_EQ(decoded.name, "fw-cfg");
  EXPECT_EQ(decoded.version, 1u);
  ASSERT_EQ(decoded.fields.size(), 4u);
  EXPECT_EQ(decoded.fields[1].name, "offset");
  EXPECT_EQ(decoded.fields[1].payload, (std::vector<std::uint8_t>{68, 0, 0, 0}));
}

}  // namespace
}  // namespace molt::fw_cfg::test
