// docs/monitor.md's reference section is what the monitor registers.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/monitor/methods.hpp"

namespace molt::core::monitor {
namespace {

TEST(MonitorDocs, ReferenceMatchesRegisteredMethods) {
  std::ifstream in(std::string(MOLT_SOURCE_DIR) + "/docs/monitor.md");
  ASSERT_TRUE(in) << "docs/monitor.md is missing";
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const std::string begin = "\n<!-- BEGIN GENERATED: molt monitor-reference -->\n";
  const std::string end = "<!-- END GENERATED -->";
  const auto b = doc.find(begin);
  const auto e = doc.find(end, b == std::string::npos ? 0 : b);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  const std::string documented = doc.substr(b + begin.size(), e - b - begin.size());
  EXPECT_EQ(documented, render_reference_markdown())
      << "docs/monitor.md differs from the registered methods; regenerate it as the doc says";
  for (const MethodSpec& m : method_table().methods())
    EXPECT_NE(documented.find("#### `" + m.name + "`"), std::string::npos) << m.name;
}

}  // namespace
}  // namespace molt::core::monitor
