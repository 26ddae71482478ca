// Path properties resolve like the file's own paths: against the machine
// file's directory.
#include <gtest/gtest.h>

#include "core/machine/description.hpp"

namespace molt::core::machine {
namespace {

using sdk::PropertySpec;
using sdk::PropertyType;

const sdk::DeviceType& disk_type() {
  static const sdk::DeviceType type{
      "disk", "a disk", {PropertySpec{.name = "image", .type = PropertyType::Path, .default_value = std::string()}},
      nullptr};
  return type;
}

std::string image_of(const std::string& value, const std::filesystem::path& origin) {
  const MachineDescription d = parse_machine(R"({"memory": {"size": "64M"}, "kernel": {"path": "/k"},
      "devices": [{"id": "d", "type": "disk", "properties": {"image": ")" + value + R"("}}]})",
                                             origin);
  return resolve_devices(d, {{"disk", &disk_type()}}).at(0).properties.get_string("image");
}

TEST(PathProperty, RelativeToTheMachineFilesDirectory) {
  EXPECT_EQ(image_of("disk.img", "/srv/vms/web.json"), "/srv/vms/disk.img");
  EXPECT_EQ(image_of("../images/./a.img", "/srv/vms/web.json"), "/srv/images/a.img");
}

TEST(PathProperty, AbsoluteStaysAndEmptyMeansNone) {
  EXPECT_EQ(image_of("/data/x.img", "/srv/vms/web.json"), "/data/x.img");
  EXPECT_EQ(image_of("", "/srv/vms/web.json"), "");
}

TEST(PathProperty, TextWithoutAFileResolvesAgainstTheCurrentDirectory) {
  EXPECT_EQ(image_of("x.img", ""), (std::filesystem::current_path() / "x.img").string());
}

}  // namespace
}  // namespace molt::core::machine
