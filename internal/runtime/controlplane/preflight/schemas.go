package preflight

import (
	"context"
	"fmt"
	"regexp"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// schemas are what one preflight read from both sides, per mapping.
type schemas struct {
	describes map[string]*salesforce.Describe // by source table as mapped
	describeE map[string]error
	dests     map[string]*mapping.DestSchema // by destination table
	destE     map[string]error
	counts    map[string]int64
	countE    map[string]error
}

// readSchemas reads every describe, table definition and record count the checks need, once.
func (c *Checker) readSchemas(ctx context.Context, s *sides, mappings []api.TableMapping, sfOK, dvOK bool) *schemas {
	sc := &schemas{describes: map[string]*salesforce.Describe{}, describeE: map[string]error{}, dests: map[string]*mapping.DestSchema{},
		destE: map[string]error{}, counts: map[string]int64{}, countE: map[string]error{}}
	for _, m := range mappings {
		src, dst := m.SourceTable, m.Destination()
		if sfOK {
			if _, done := sc.describes[src]; !done {
				sc.describes[src], sc.describeE[src] = s.sf.Describe(ctx, src)
				if sc.describeE[src] == nil {
					n, err := count(ctx, s.sf, src)
					sc.counts[src], sc.countE[src] = n, err
				}
			}
		}
		if dvOK {
			if _, done := sc.dests[dst]; !done {
				sc.dests[dst], sc.destE[dst] = s.dv.Table(ctx, dst)
			}
		}
	}
	return sc
}

var objectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// count runs SELECT COUNT() on an object whose name is checked first (it goes into SOQL).
func count(ctx context.Context, sf *salesforce.Client, object string) (int64, error) {
	if !objectName.MatchString(object) {
		return 0, fmt.Errorf("%q is not a Salesforce object name", object)
	}
	n, err := sf.Count(ctx, "SELECT COUNT() FROM "+object)
	return int64(n), err
}

func sourceSchema(sc *schemas, m api.TableMapping) *mapping.SourceSchema {
	if d := sc.describes[m.SourceTable]; d != nil {
		return d.SourceSchema()
	}
	return mapping.StandardSource(m.SourceTable)
}

func destSchema(sc *schemas, m api.TableMapping) *mapping.DestSchema {
	if d := sc.dests[m.Destination()]; d != nil {
		return d
	}
	return mapping.StandardDestination(m.Destination())
}

// LiveSchemas implements controlplane.Checker: the Salesforce describe of sourceTable, the Dataverse
// definition of destTable and the number of source records.
func (c *Checker) LiveSchemas(ctx context.Context, conn api.Connector, secrets store.Secrets, sourceTable, destTable string) (*mapping.SourceSchema, *mapping.DestSchema, int64, error) {
	if !objectName.MatchString(sourceTable) {
		return nil, nil, 0, fmt.Errorf("source table %q is not a Salesforce object name", sourceTable)
	}
	s := c.connect(conn, secrets)
	if s.sf == nil {
		return nil, nil, 0, fmt.Errorf("salesforce: %w", s.sfErr)
	}
	if s.dv == nil {
		return nil, nil, 0, fmt.Errorf("dataverse: %w", s.dvErr)
	}
	d, err := s.sf.Describe(ctx, sourceTable)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("describing Salesforce %s: %w", sourceTable, err)
	}
	dst, err := s.dv.Table(ctx, destTable)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("reading Dataverse table %s: %w", destTable, err)
	}
	n, err := count(ctx, s.sf, d.Name)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("counting Salesforce %s: %w", sourceTable, err)
	}
	return d.SourceSchema(), dst, n, nil
}
