package eventbusv1

import (
	"strconv"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestWireNamesAndNumbersMatchTheSpec pins every message, field name, number and type and every enum value
// of the published Pub/Sub API, so an edit of the .proto cannot silently break wire compatibility with
// the real Pub/Sub API.
func TestWireNamesAndNumbersMatchTheSpec(t *testing.T) {
	want := map[string][]string{ // message → "name=number type", in field-number order
		"TopicRequest":    {"topic_name=1 string"},
		"TopicInfo":       {"topic_name=1 string", "tenant_guid=2 string", "can_publish=3 bool", "can_subscribe=4 bool", "schema_id=5 string", "rpc_id=6 string"},
		"SchemaRequest":   {"schema_id=1 string"},
		"SchemaInfo":      {"schema_json=1 string", "schema_id=2 string", "rpc_id=3 string"},
		"EventHeader":     {"key=1 string", "value=2 bytes"},
		"ProducerEvent":   {"id=1 string", "schema_id=2 string", "payload=3 bytes", "headers=4 repeated eventbus.v1.EventHeader"},
		"ConsumerEvent":   {"event=1 eventbus.v1.ProducerEvent", "replay_id=2 bytes"},
		"PublishResult":   {"replay_id=1 bytes", "error=2 eventbus.v1.Error", "correlation_key=3 string"},
		"Error":           {"code=1 eventbus.v1.ErrorCode", "msg=2 string"},
		"FetchRequest":    {"topic_name=1 string", "replay_preset=2 eventbus.v1.ReplayPreset", "replay_id=3 bytes", "num_requested=4 int32", "auth_refresh=5 string"},
		"FetchResponse":   {"events=1 repeated eventbus.v1.ConsumerEvent", "latest_replay_id=2 bytes", "rpc_id=3 string", "pending_num_requested=4 int32"},
		"PublishRequest":  {"topic_name=1 string", "events=2 repeated eventbus.v1.ProducerEvent", "auth_refresh=3 string"},
		"PublishResponse": {"results=1 repeated eventbus.v1.PublishResult", "schema_id=2 string", "rpc_id=3 string"},
		"ManagedFetchRequest": {"subscription_id=1 string", "developer_name=2 string", "num_requested=3 int32", "auth_refresh=4 string",
			"commit_replay_id_request=5 eventbus.v1.CommitReplayRequest"},
		"ManagedFetchResponse": {"events=1 repeated eventbus.v1.ConsumerEvent", "latest_replay_id=2 bytes", "rpc_id=3 string",
			"pending_num_requested=4 int32", "commit_response=5 eventbus.v1.CommitReplayResponse"},
		"CommitReplayRequest":  {"commit_request_id=1 string", "replay_id=2 bytes"},
		"CommitReplayResponse": {"commit_request_id=1 string", "replay_id=2 bytes", "error=3 eventbus.v1.Error", "process_time=4 int64"},
	}
	fd := File_eventbus_v1_pubsub_api_proto
	if fd.Package() != "eventbus.v1" {
		t.Fatalf("package %s", fd.Package())
	}
	if fd.Messages().Len() != len(want) {
		t.Errorf("%d messages, want %d", fd.Messages().Len(), len(want))
	}
	for name, fields := range want {
		md := fd.Messages().ByName(protoreflect.Name(name))
		if md == nil {
			t.Errorf("message %s missing", name)
			continue
		}
		if md.Fields().Len() != len(fields) {
			t.Errorf("%s has %d fields, want %d", name, md.Fields().Len(), len(fields))
		}
		for i, w := range fields {
			if i >= md.Fields().Len() {
				break
			}
			f := md.Fields().Get(i)
			typ := f.Kind().String()
			switch f.Kind() {
			case protoreflect.MessageKind:
				typ = string(f.Message().FullName())
			case protoreflect.EnumKind:
				typ = string(f.Enum().FullName())
			}
			if f.IsList() {
				typ = "repeated " + typ
			}
			if got := string(f.Name()) + "=" + strconv.Itoa(int(f.Number())) + " " + typ; got != w {
				t.Errorf("%s field %d is %q, want %q", name, i, got, w)
			}
		}
	}
	enums := map[string][]string{"ReplayPreset": {"LATEST", "EARLIEST", "CUSTOM"}, "ErrorCode": {"UNKNOWN", "PUBLISH", "COMMIT"}}
	for name, values := range enums {
		ed := fd.Enums().ByName(protoreflect.Name(name))
		if ed == nil || ed.Values().Len() != len(values) {
			t.Fatalf("enum %s: %v", name, ed)
		}
		for i, v := range values {
			if ev := ed.Values().Get(i); string(ev.Name()) != v || int(ev.Number()) != i {
				t.Errorf("%s value %d is %s=%d, want %s=%d", name, i, ev.Name(), ev.Number(), v, i)
			}
		}
	}
	sd := fd.Services().ByName("PubSub")
	if sd == nil {
		t.Fatal("service PubSub missing")
	}
	methods := map[string]string{
		"Subscribe": "stream FetchRequest → stream FetchResponse", "GetSchema": "SchemaRequest → SchemaInfo",
		"GetTopic": "TopicRequest → TopicInfo", "Publish": "PublishRequest → PublishResponse",
		"PublishStream":    "stream PublishRequest → stream PublishResponse",
		"ManagedSubscribe": "stream ManagedFetchRequest → stream ManagedFetchResponse",
	}
	if sd.Methods().Len() != len(methods) {
		t.Errorf("%d methods, want %d", sd.Methods().Len(), len(methods))
	}
	for name, sig := range methods {
		m := sd.Methods().ByName(protoreflect.Name(name))
		if m == nil {
			t.Errorf("method %s missing", name)
			continue
		}
		got := string(m.Input().Name()) + " → " + string(m.Output().Name())
		if m.IsStreamingClient() {
			got = "stream " + got
		}
		if m.IsStreamingServer() {
			got = string(m.Input().Name()) + " → stream " + string(m.Output().Name())
			if m.IsStreamingClient() {
				got = "stream " + got
			}
		}
		if got != sig {
			t.Errorf("%s is %s, want %s", name, got, sig)
		}
	}
	if PubSub_Subscribe_FullMethodName != "/eventbus.v1.PubSub/Subscribe" {
		t.Errorf("full method name %s", PubSub_Subscribe_FullMethodName)
	}
}
