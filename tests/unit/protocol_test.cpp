// The wire format on its own: framing, the codec's limits, message shapes.
#include <gtest/gtest.h>

#include <string>

#include "protocol/frame.hpp"
#include "protocol/rpc.hpp"

namespace {

using namespace descent::protocol;

std::string packed(const std::function<void(Packer&)>& write) {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  write(p);
  return std::string(buffer.data(), buffer.size());
}

TEST(Frame, HeaderIsBigEndianLength) {
  const auto h = encode_header(0x01020304);
  EXPECT_EQ(h[0], 1);
  EXPECT_EQ(h[3], 4);
  EXPECT_EQ(decode_header(h), 0x01020304u);
}

TEST(Frame, MakeFramePrefixesTheLength) {
  msgpack::sbuffer b;
  Packer(b).pack(42);
  const std::string frame = make_frame(b);
  ASSERT_EQ(frame.size(), header_size + b.size());
  EXPECT_EQ(decode_header(std::span<const unsigned char, 4>(reinterpret_cast<const unsigned char*>(frame.data()), 4)),
            b.size());
}

TEST(Decode, RoundTripsEveryByteAsBin) {
  std::string name;
  for (int i = 0; i < 256; ++i) name.push_back(static_cast<char>(i));
  name += "\n-leading dash\\ and spaces";
  const std::string bytes = packed([&](Packer& p) { pack_bytes(p, name); });
  auto handle = decode_payload(bytes.data(), bytes.size());
  ASSERT_EQ(handle.get().type, msgpack::type::BIN);
  EXPECT_EQ(*as_bytes(handle.get()), name);
}

TEST(Decode, RefusesAnArrayClaimingFourBillionElements) {
  // 0xdd = array 32 with a count of 0xffffffff, followed by nothing.
  const std::string bytes("\xdd\xff\xff\xff\xff", 5);
  try {
    decode_payload(bytes.data(), bytes.size());
    FAIL() << "accepted";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("claims"), std::string::npos) << e.what();
  }
}

TEST(Decode, RefusesAMapClaimingMorePairsThanBytes) {
  const std::string bytes("\xdf\x00\x10\x00\x00\x01\x02", 7);
  EXPECT_THROW(decode_payload(bytes.data(), bytes.size()), ProtocolError);
}

TEST(Decode, CountsNestedClaimsTogether) {
  // Each nested array claims as many elements as the frame has bytes left;
  // together they claim far more, which is what would make unpacking allocate.
  std::string bytes;
  for (int i = 0; i < 10; ++i) bytes += std::string("\xdc\x00\x20", 3);  // array16 of 32
  bytes += std::string(30, '\xc0');
  EXPECT_THROW(decode_payload(bytes.data(), bytes.size()), ProtocolError);
}

TEST(Decode, RefusesDeepNesting) {
  std::string bytes(200, '\x91');  // fixarray of one, two hundred deep
  bytes.push_back('\xc0');
  EXPECT_THROW(decode_payload(bytes.data(), bytes.size()), ProtocolError);
}

TEST(Decode, RefusesTruncatedValues) {
  const std::string whole = packed([](Packer& p) { pack_text(p, "hello world"); });
  EXPECT_THROW(decode_payload(whole.data(), whole.size() - 3), ProtocolError);
}

TEST(Decode, RefusesTrailingBytes) {
  std::string bytes = packed([](Packer& p) { p.pack(1); });
  bytes += "junk";
  EXPECT_THROW(decode_payload(bytes.data(), bytes.size()), ProtocolError);
}

TEST(Decode, RefusesBytesThatAreNotMessagePack) {
  const std::string bytes("\xc1", 1);  // never used in MessagePack
  EXPECT_THROW(decode_payload(bytes.data(), bytes.size()), ProtocolError);
  EXPECT_THROW(decode_payload("", 0), ProtocolError);
}

TEST(Decode, AcceptsEmptyContainers) {
  const std::string bytes = packed([](Packer& p) {
    p.pack_array(3);
    p.pack_array(0);
    p.pack_map(0);
    pack_bytes(p, "");
  });
  auto handle = decode_payload(bytes.data(), bytes.size());
  EXPECT_EQ(handle.get().via.array.size, 3u);
}

Message parse(const std::string& bytes, msgpack::object_handle& keep) {
  keep = decode_payload(bytes.data(), bytes.size());
  return parse_message(keep.get());
}

TEST(Messages, ParsesRequestsResponsesAndNotifications) {
  msgpack::object_handle keep;
  const std::string request = request_frame(7, "status", [](Packer& p) { p.pack_array(0); }).substr(header_size);
  auto m = parse(request, keep);
  ASSERT_TRUE(std::holds_alternative<Request>(m));
  EXPECT_EQ(std::get<Request>(m).id, 7u);
  EXPECT_EQ(std::get<Request>(m).method, "status");

  const std::string error = error_frame(9, "bad-params", "no").substr(header_size);
  m = parse(error, keep);
  ASSERT_TRUE(std::holds_alternative<Response>(m));
  const auto e = read_error(*std::get<Response>(m).error);
  EXPECT_EQ(e.kind, "bad-params");
  EXPECT_EQ(e.message, "no");

  const std::string note = notification_frame("cancel", [](Packer& p) {
                             p.pack_array(1);
                             p.pack(3);
                           }).substr(header_size);
  m = parse(note, keep);
  ASSERT_TRUE(std::holds_alternative<Notification>(m));
  EXPECT_EQ(std::get<Notification>(m).method, "cancel");
}

TEST(Messages, RefusesWrongShapes) {
  msgpack::object_handle keep;
  EXPECT_THROW(parse(packed([](Packer& p) { p.pack(1); }), keep), ProtocolError);
  EXPECT_THROW(parse(packed([](Packer& p) {
                 p.pack_array(4);
                 p.pack(0);
                 p.pack(-1);
                 pack_text(p, "x");
                 p.pack_array(0);
               }),
                     keep),
               ProtocolError);
  EXPECT_THROW(parse(packed([](Packer& p) {
                 p.pack_array(4);
                 p.pack(0);
                 p.pack(1);
                 p.pack(5);
                 p.pack_array(0);
               }),
                     keep),
               ProtocolError);
  EXPECT_THROW(parse(packed([](Packer& p) {
                 p.pack_array(4);
                 p.pack(0);
                 p.pack(1);
                 pack_text(p, "x");
                 p.pack(3);
               }),
                     keep),
               ProtocolError);
  EXPECT_THROW(parse(packed([](Packer& p) {
                 p.pack_array(3);
                 p.pack(7);
                 p.pack(1);
                 p.pack(1);
               }),
                     keep),
               ProtocolError);
}

TEST(Messages, PackPackedAppendsVerbatim) {
  msgpack::sbuffer inner;
  Packer(inner).pack_array(2).pack(1).pack(2);
  const std::string frame = request_frame(1, "x", [&](Packer& p) { pack_packed(p, inner); });
  msgpack::object_handle keep;
  auto m = parse(frame.substr(header_size), keep);
  EXPECT_EQ(std::get<Request>(m).params->via.array.size, 2u);
}

}  // namespace
