package pubsub

import "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"

// EncodeForTest returns the schema JSON of an event's entity and the event's binary Avro payload, as
// Subscribe would send them; clients' decoder tests use it.
func (s *Server) EncodeForTest(ev cdc.Event) (schemaJSON string, payload []byte, err error) {
	es, err := s.schemas.forEntity(ev.Entity)
	if err != nil {
		return "", nil, err
	}
	payload, err = es.encode(&ev)
	return es.json, payload, err
}
