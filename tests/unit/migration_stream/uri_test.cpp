// Channel URIs: what parses, into what, and the sentence for what doesn't.
#include <gtest/gtest.h>

#include <string>

#include "core/migration/channel.hpp"

namespace molt::core::migration {
namespace {

TEST(ChannelUri, ParsesEveryTransport) {
  const ChannelUri v4 = ChannelUri::parse("tcp:127.0.0.1:4444");
  EXPECT_EQ(v4.transport, Transport::Tcp);
  EXPECT_EQ(v4.host, "127.0.0.1");
  EXPECT_EQ(v4.port, 4444);
  EXPECT_EQ(v4.text, "tcp:127.0.0.1:4444");
  EXPECT_TRUE(v4.two_way());

  const ChannelUri name = ChannelUri::parse("tcp:dest.example:65535");
  EXPECT_EQ(name.host, "dest.example");
  EXPECT_EQ(name.port, 65535);

  const ChannelUri v6 = ChannelUri::parse("tcp:[::1]:80");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 80);

  const ChannelUri any = ChannelUri::parse("tcp::0");
  EXPECT_EQ(any.host, "");
  EXPECT_EQ(any.port, 0);

  const ChannelUri unix_uri = ChannelUri::parse("unix:/run/molt/mig.sock");
  EXPECT_EQ(unix_uri.transport, Transport::Unix);
  EXPECT_EQ(unix_uri.path, "/run/molt/mig.sock");

  const ChannelUri file = ChannelUri::parse("file:snap:shot.molt");
  EXPECT_EQ(file.transport, Transport::File);
  EXPECT_EQ(file.path, "snap:shot.molt");
  EXPECT_FALSE(file.two_way());

  const ChannelUri fd = ChannelUri::parse("fd:7");
  EXPECT_EQ(fd.transport, Transport::Fd);
  EXPECT_EQ(fd.fd, 7);
  EXPECT_STREQ(to_string(Transport::Unix), "unix");
}

struct BadUri {
  const char* uri;
  const char* message;
};

TEST(ChannelUri, RefusesWithASentenceNamingTheUri) {
  const BadUri cases[] = {
      {"udp:1.2.3.4:5", "udp:1.2.3.4:5: unknown transport 'udp'; expected tcp, unix, file or fd"},
      {"/tmp/sock", "'/tmp/sock' is not a channel URI; expected tcp:HOST:PORT, unix:PATH, file:PATH or fd:N"},
      {"tcp:host", "tcp:host: tcp:HOST:PORT needs a port"},
      {"tcp:host:",
       "tcp:host:: tcp:HOST:PORT needs a port 0-65535 (0 picks a free one when listening), not ''"},
      {"tcp:host:65536",
       "tcp:host:65536: tcp:HOST:PORT needs a port 0-65535 (0 picks a free one when listening), not '65536'"},
      {"tcp:host:12a",
       "tcp:host:12a: tcp:HOST:PORT needs a port 0-65535 (0 picks a free one when listening), not '12a'"},
      {"tcp:host:-1",
       "tcp:host:-1: tcp:HOST:PORT needs a port 0-65535 (0 picks a free one when listening), not '-1'"},
      {"tcp:::1:80", "tcp:::1:80: an IPv6 address needs brackets, as in tcp:[::1]:4444"},
      {"tcp:[::1:80", "tcp:[::1:80: an IPv6 address opened with '[' needs a closing ']'"},
      {"tcp:[::1]80", "tcp:[::1]80: tcp:[ADDRESS]:PORT needs ':PORT' after the ']'"},
      {"tcp:[]:80", "tcp:[]:80: the brackets hold no IPv6 address"},
      {"unix:", "unix:: unix:PATH needs a path"},
      {"file:", "file:: file:PATH needs a path"},
      {"fd:x", "fd:x: fd:N needs a file descriptor number, not 'x'"},
      {"fd:", "fd:: fd:N needs a file descriptor number, not ''"},
  };
  for (const BadUri& c : cases) {
    try {
      ChannelUri::parse(c.uri);
      ADD_FAILURE() << c.uri << " parsed";
    } catch (const sdk::Error& e) {
      EXPECT_EQ(std::string(e.what()), c.message);
    }
  }
  const std::string long_path = "unix:/" + std::string(120, 'p');
  EXPECT_THROW(ChannelUri::parse(long_path), sdk::Error);
}

}  // namespace
}  // namespace molt::core::migration
