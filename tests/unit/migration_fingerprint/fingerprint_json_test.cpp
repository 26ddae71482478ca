// to_json() / fingerprint_from_json(): a lossless round trip, and malformed
// fingerprints refused with the JSON path of what is wrong.
#include <string>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <molt/sdk/error.hpp>

#include "core/migration/fingerprint.hpp"
#include "fingerprint_fixture.hpp"

namespace molt::core::migration {
namespace {

namespace json = boost::json;
using testing::pc_machine;

TEST(FingerprintJson, RoundTripsEveryField) {
  MachineFingerprint m = pc_machine();
  m.devices[2].unmigratable = "it passes a host device through";
  m.ram.push_back({"big", (1ull << 40) + 4096});
  const json::value j = to_json(m);
  EXPECT_EQ(fingerprint_from_json(j), m);
  // Through text too, as the handshake sends it.
  EXPECT_EQ(fingerprint_from_json(json::parse(json::serialize(j))), m);
}

TEST(FingerprintJson, PropertiesTravelAsJsonValues) {
  const json::value j = to_json(pc_machine());
  const json::object& com1 = j.at("devices").at(0).as_object();
  EXPECT_EQ(com1.at("id").as_string(), "com1");
  EXPECT_EQ(com1.at("properties").at("fifo"), json::value(true));
  EXPECT_EQ(com1.at("properties").at("backend"), json::value("stdio"));
  EXPECT_EQ(j.at("devices").at(2).at("properties").at("base-year"), json::value(2000));
  EXPECT_EQ(j.at("cpu").at("xsave_size"), json::value(2696));
  EXPECT_EQ(j.at("ram").at(0).at("size"), json::value(1ull << 30));
}

TEST(FingerprintJson, UnknownFieldsAreIgnored) {
  json::value j = to_json(pc_machine());
  j.as_object()["added_later"] = 1;
  j.at("devices").at(0).as_object()["also_new"] = "x";
  EXPECT_EQ(fingerprint_from_json(j), pc_machine());
}

// The message fingerprint_from_json gives for `j`, or "" if it accepts it.
std::string error_of(const json::value& j) {
  try {
    fingerprint_from_json(j);
  } catch (const sdk::Error& e) {
    return e.what();
  }
  return "";
}

TEST(FingerprintJson, MalformedFieldsNameTheirPath) {
  const json::value good = to_json(pc_machine());
  auto with = [&good](auto&& change) {
    json::value j = good;
    change(j);
    return error_of(j);
  };
  EXPECT_EQ(error_of(json::value(3)), "fingerprint: expected an object");
  EXPECT_EQ(with([](json::value& j) { j.at("devices").at(2).as_object()["descriptor_version"] = -1; }),
            "fingerprint.devices[2].descriptor_version: expected a non-negative integer");
  EXPECT_EQ(with([](json::value& j) { j.at("devices").at(1).as_object()["descriptor_minimum"] = 1.5; }),
            "fingerprint.devices[1].descriptor_minimum: expected a non-negative integer");
  EXPECT_EQ(with([](json::value& j) { j.at("devices").at(0).as_object().erase("type"); }),
            "fingerprint.devices[0].type: missing");
  EXPECT_EQ(with([](json::value& j) { j.at("devices").at(3) = "disk0"; }),
            "fingerprint.devices[3]: expected an object");
  EXPECT_EQ(with([](json::value& j) { j.at("devices").at(0).as_object()["properties"] = json::array{}; }),
            "fingerprint.devices[0].properties: expected an object");
  EXPECT_EQ(with([](json::value& j) { j.as_object()["vcpus"] = 1ull << 32; }),
            "fingerprint.vcpus: expected an integer no larger than 4294967295");
  EXPECT_EQ(with([](json::value& j) { j.as_object()["machine_type"] = 7; }),
            "fingerprint.machine_type: expected a string");
  EXPECT_EQ(with([](json::value& j) { j.at("cpu").at("features").as_array()[1] = false; }),
            "fingerprint.cpu.features[1]: expected a string");
  EXPECT_EQ(with([](json::value& j) { j.at("cpu").as_object().erase("xsave_size"); }),
            "fingerprint.cpu.xsave_size: missing");
  EXPECT_EQ(with([](json::value& j) { j.as_object()["cpu"] = nullptr; }),
            "fingerprint.cpu: expected an object");
  EXPECT_EQ(with([](json::value& j) { j.at("ram").at(1).as_object()["size"] = "2G"; }),
            "fingerprint.ram[1].size: expected a non-negative integer");
  EXPECT_EQ(with([](json::value& j) { j.as_object()["ram"] = json::object{}; }),
            "fingerprint.ram: expected an array");
  EXPECT_EQ(with([](json::value&) {}), "");
}

}  // namespace
}  // namespace molt::core::migration
