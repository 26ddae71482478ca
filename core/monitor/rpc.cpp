#include "core/monitor/rpc.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

namespace molt::core::monitor {

namespace {

const char* json_kind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

bool has_type(const json::value& v, ParamType type) {
  switch (type) {
    case ParamType::String:
      return v.is_string();
    case ParamType::UInt:
      return v.is_uint64() || (v.is_int64() && v.as_int64() >= 0);
    case ParamType::Bool:
      return v.is_bool();
    case ParamType::Scalar:
      return v.is_string() || v.is_bool() || v.is_uint64() || (v.is_int64() && v.as_int64() >= 0);
    case ParamType::StringList:
      return v.is_array() && std::all_of(v.as_array().begin(), v.as_array().end(),
                                         [](const json::value& e) { return e.is_string(); });
  }
  return false;
}

std::string param_names(const std::vector<ParamSpec>& specs) {
  if (specs.empty()) return "it takes none";
  std::string names;
  for (const ParamSpec& s : specs) names += (names.empty() ? "" : ", ") + s.name;
  return "it takes: " + names;
}

json::object result_reply(const json::value& id, json::value result) {
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

bool valid_id(const json::value& id) {
  return id.is_string() || id.is_int64() || id.is_uint64() || id.is_null();
}

// One request object of a single request or a batch. Returns nullopt when
// nothing is to be replied (a notification).
std::optional<json::object> handle_request(const MethodTable& table, const json::value& request,
                                           Session& session, Services& services) {
  if (!request.is_object()) {
    return error_reply(nullptr, kInvalidRequest,
                       fmt::format("a request must be a JSON object, got {}", json_kind(request)));
  }
  const json::object& obj = request.as_object();
  const json::value* id = obj.if_contains("id");
  const json::value reply_id = id && valid_id(*id) ? *id : json::value(nullptr);
  if (id && !valid_id(*id)) {
    return error_reply(nullptr, kInvalidRequest,
                       fmt::format("\"id\" must be a string, an integer or null, got {}", json_kind(*id)));
  }
  const json::value* version = obj.if_contains("jsonrpc");
  if (!version || !version->is_string() || version->as_string() != "2.0") {
    return error_reply(reply_id, kInvalidRequest, "\"jsonrpc\" must be \"2.0\"");
  }
  const json::value* method = obj.if_contains("method");
  if (!method || !method->is_string()) {
    return error_reply(reply_id, kInvalidRequest,
                       "\"method\" must be a string naming the method, e.g. \"vm.status\"");
  }
  for (const auto& member : obj) {
    const std::string_view key = member.key();
    if (key != "jsonrpc" && key != "method" && key != "params" && key != "id")
      return error_reply(reply_id, kInvalidRequest, fmt::format("unknown member \"{}\" in the request", key));
  }
  const std::string name(method->as_string());
  std::optional<json::object> reply;
  try {
    const MethodSpec* spec = table.find(name);
    if (!spec)
      throw RpcError(kMethodNotFound, fmt::format("no method \"{}\"; monitor.methods lists them all", name));
    static const json::object kNoParams;
    const json::value* params = obj.if_contains("params");
    if (params && !params->is_object()) {
      throw RpcError(kInvalidParams, fmt::format("params of {} must be an object of named params, got {}",
                                                 name, json_kind(*params)));
    }
    const json::object& named = params ? params->as_object() : kNoParams;
    check_params(spec->params, named);
    json::value result = spec->handler(Call{named, session, services});
    reply = result_reply(reply_id, std::move(result));
  } catch (const RpcError& e) {
    reply = error_reply(reply_id, e.code(), e.what());
  } catch (const std::exception& e) {
    reply = error_reply(reply_id, kInternalError, fmt::format("{} failed: {}", name, e.what()));
  }
  if (!id) return std::nullopt;  // a notification: done, nothing to say
  return reply;
}

}  // namespace

const char* to_string(ParamType type) {
  switch (type) {
    case ParamType::String:
      return "string";
    case ParamType::UInt:
      return "integer";
    case ParamType::Bool:
      return "boolean";
    case ParamType::Scalar:
      return "string, integer or boolean";
    case ParamType::StringList:
      return "array of strings";
  }
  return "value";
}

void MethodTable::add(MethodSpec spec) {
  if (find(spec.name)) throw std::logic_error("monitor method registered twice: " + spec.name);
  methods_.push_back(std::move(spec));
}

const MethodSpec* MethodTable::find(std::string_view name) const {
  for (const MethodSpec& m : methods_)
    if (m.name == name) return &m;
  return nullptr;
}

void check_params(const std::vector<ParamSpec>& specs, const json::object& params) {
  for (const auto& member : params) {
    const auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == member.key(); });
    if (spec == specs.end())
      throw RpcError(kInvalidParams, fmt::format("unknown param \"{}\"; {}", std::string_view(member.key()),
                                                 param_names(specs)));
    if (!has_type(member.value(), spec->type)) {
      throw RpcError(kInvalidParams,
                     fmt::format("param \"{}\" must be a {} ({}), got {}", spec->name, to_string(spec->type),
                                 spec->doc, json_kind(member.value())));
    }
  }
  for (const ParamSpec& s : specs) {
    if (s.required && !params.contains(s.name))
      throw RpcError(kInvalidParams,
                     fmt::format("missing param \"{}\": a {} ({})", s.name, to_string(s.type), s.doc));
  }
}

json::object error_reply(const json::value& id, int code, const std::string& message) {
  return json::object{
      {"jsonrpc", "2.0"}, {"id", id}, {"error", json::object{{"code", code}, {"message", message}}}};
}

std::string notification_line(const std::string& event, const json::object& params) {
  return json::serialize(json::object{{"jsonrpc", "2.0"}, {"method", event}, {"params", params}});
}

std::string handle_line(const MethodTable& table, std::string_view line, Session& session,
                        Services& services) {
  json::error_code ec;
  json::parse_options options;
  options.max_depth = 32;
  const json::value parsed = json::parse(line, ec, {}, options);
  if (ec)
    return json::serialize(
        error_reply(nullptr, kParseError, "the request is not valid JSON: " + ec.message()));
  if (!parsed.is_array()) {
    auto reply = handle_request(table, parsed, session, services);
    return reply ? json::serialize(*reply) : std::string();
  }
  const json::array& batch = parsed.as_array();
  if (batch.empty())
    return json::serialize(error_reply(nullptr, kInvalidRequest, "an empty batch is not a request"));
  if (batch.size() > kMaxBatch) {
    return json::serialize(
        error_reply(nullptr, kInvalidRequest,
                    fmt::format("a batch holds at most {} requests, this one {}", kMaxBatch, batch.size())));
  }
  json::array replies;
  for (const json::value& request : batch) {
    if (auto reply = handle_request(table, request, session, services)) replies.push_back(std::move(*reply));
  }
  return replies.empty() ? std::string() : json::serialize(replies);
}

}  // namespace molt::core::monitor
