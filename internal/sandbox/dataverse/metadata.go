package dataverse

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// Metadata (spec 3): EntityDefinitions as a collection or keyed by LogicalName or MetadataId, with $select,
// $filter and $expand=Attributes(...); the Attributes collection with the derived-type casts
// (StringAttributeMetadata, MemoAttributeMetadata, LookupAttributeMetadata, ...); one attribute by
// LogicalName; Privileges and Keys. Through $expand=Attributes or the uncast collection only base
// AttributeMetadata properties may be selected; derived ones (MaxLength, Targets) need the cast.

// omap is a JSON object that keeps its member order.
type omap []kv

type kv struct {
	k string
	v any
}

func (m omap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, p := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonrow.AppendString(nil, p.k))
		b.WriteByte(':')
		v, err := json.Marshal(p.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (m omap) get(k string) (any, bool) {
	for _, p := range m {
		if p.k == k {
			return p.v, true
		}
	}
	return nil, false
}

func label(text string) omap {
	l := omap{{"Label", text}, {"LanguageCode", 1033}, {"IsManaged", true}, {"MetadataId", nil}, {"HasChanged", nil}}
	return omap{{"LocalizedLabels", []omap{l}}, {"UserLocalizedLabel", l}}
}

func managed(v bool, name string) omap {
	return omap{{"Value", v}, {"CanBeChanged", true}, {"ManagedPropertyLogicalName", name}}
}

// entityProps lists EntityMetadata properties in output order.
func (e *Emulator) entityMetadata(t *table) omap {
	return omap{
		{"MetadataId", guidString(t.MetadataID)},
		{"LogicalName", t.Logical},
		{"SchemaName", t.Schema},
		{"EntitySetName", t.Set},
		{"LogicalCollectionName", t.Set},
		{"CollectionSchemaName", t.CollectionSchema},
		{"ObjectTypeCode", t.OTC},
		{"PrimaryIdAttribute", t.PrimaryID},
		{"PrimaryNameAttribute", nilIfEmpty(t.PrimaryName)},
		{"PrimaryImageAttribute", primaryImage(t)},
		{"OwnershipType", t.Ownership},
		{"TableType", "Standard"},
		{"ChangeTrackingEnabled", t.ChangeTracking},
		{"IsOptimisticConcurrencyEnabled", true},
		{"IsCustomEntity", t.Custom},
		{"IsActivity", false},
		{"IsIntersect", false},
		{"IsManaged", true},
		{"IsPrivate", false},
		{"IsValidForAdvancedFind", !t.system},
		{"HasNotes", !t.system},
		{"HasActivities", !t.system},
		{"IsAuditEnabled", managed(!t.system, "canmodifyauditsettings")},
		{"DisplayName", label(t.DisplayName)},
		{"DisplayCollectionName", label(t.DisplayPl)},
		{"Description", label("")},
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func primaryImage(t *table) any {
	if t.byLogical["entityimage"] != nil {
		return "entityimage"
	}
	return nil
}

var entityPropNames = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range (&Emulator{}).entityMetadata(&table{}) {
		m[p.k] = true
	}
	return m
}()

// attributeBase is the base AttributeMetadata part of an attribute, in output order.
func attributeBase(t *table, c *column) omap {
	return omap{
		{"@odata.type", "#Microsoft.Dynamics.CRM." + c.ODataType},
		{"MetadataId", guidString(c.MetadataID)},
		{"LogicalName", c.Logical},
		{"SchemaName", c.Schema},
		{"EntityLogicalName", t.Logical},
		{"AttributeType", c.Type},
		{"AttributeTypeName", omap{{"Value", c.TypeName}}},
		{"AttributeOf", nilIfEmpty(c.AttributeOf)},
		{"ColumnNumber", c.ColumnNumber},
		{"IsCustomAttribute", c.Custom},
		{"IsPrimaryId", c.PrimaryID},
		{"IsPrimaryName", c.PrimaryName},
		{"IsValidForCreate", c.ValidCreate},
		{"IsValidForUpdate", c.ValidUpdate},
		{"IsValidForRead", c.ValidRead},
		{"IsValidODataAttribute", c.prop != ""},
		{"IsLogical", c.src == srcDerived},
		{"IsSecured", false},
		{"IsManaged", !c.Custom},
		{"IsValidForAdvancedFind", managed(c.ValidRead, "canmodifysearchsettings")},
		{"RequiredLevel", omap{{"Value", c.Required}, {"CanBeChanged", c.Required != reqSystemRequired}, {"ManagedPropertyLogicalName", "canmodifyrequirementlevelsettings"}}},
		{"SourceType", 0},
		{"DisplayName", label(c.DisplayName)},
		{"Description", label("")},
	}
}

var basePropNames = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range attributeBase(&table{}, &column{}) {
		m[p.k] = true
	}
	return m
}()

// attributeDerived is the derived-type part of an attribute (MaxLength, Targets, ...).
func attributeDerived(c *column) omap {
	switch c.ODataType {
	case "StringAttributeMetadata":
		return omap{{"MaxLength", c.MaxLength}, {"DatabaseLength", c.MaxLength * 2}, {"Format", c.Format},
			{"FormatName", omap{{"Value", c.Format}}}, {"IsLocalizable", false}, {"YomiOf", nil}}
	case "MemoAttributeMetadata":
		return omap{{"MaxLength", c.MaxLength}, {"DatabaseLength", c.MaxLength * 2}, {"Format", c.Format},
			{"FormatName", omap{{"Value", c.Format}}}, {"IsLocalizable", false}}
	case "LookupAttributeMetadata":
		return omap{{"Targets", c.Targets}, {"Format", nil}}
	case "DateTimeAttributeMetadata":
		behavior := "UserLocal"
		if c.DateOnly {
			behavior = "DateOnly"
		}
		return omap{{"Format", c.Format}, {"DateTimeBehavior", omap{{"Value", behavior}}},
			{"MinSupportedValue", "1753-01-01T00:00:00Z"}, {"MaxSupportedValue", "9999-12-30T23:59:59Z"}}
	case "IntegerAttributeMetadata":
		return omap{{"MinValue", int64(c.MinValue)}, {"MaxValue", int64(c.MaxValue)}, {"Format", c.Format}}
	case "BigIntAttributeMetadata":
		return omap{{"MinValue", int64(c.MinValue)}, {"MaxValue", int64(c.MaxValue)}}
	case "MoneyAttributeMetadata":
		return omap{{"MinValue", c.MinValue}, {"MaxValue", c.MaxValue}, {"Precision", c.Precision}, {"PrecisionSource", 2}}
	case "DoubleAttributeMetadata", "DecimalAttributeMetadata":
		return omap{{"MinValue", c.MinValue}, {"MaxValue", c.MaxValue}, {"Precision", c.Precision}}
	case "PicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata", "BooleanAttributeMetadata":
		return omap{{"DefaultFormValue", defaultOption(c)}}
	case "ImageAttributeMetadata":
		return omap{{"IsPrimaryImage", true}, {"MaxHeight", 144}, {"MaxWidth", 144}, {"MaxSizeInKB", 10240}, {"CanStoreFullImage", true}}
	}
	return nil
}

func defaultOption(c *column) any {
	if len(c.Options) > 0 && c.Type != atPicklist {
		return c.Options[0].Value
	}
	return -1
}

// castTypes are the derived attribute types a collection can be cast to, and the AttributeTypes they hold.
var castTypes = map[string]func(*column) bool{
	"StringAttributeMetadata":           func(c *column) bool { return c.ODataType == "StringAttributeMetadata" },
	"MemoAttributeMetadata":             func(c *column) bool { return c.ODataType == "MemoAttributeMetadata" },
	"LookupAttributeMetadata":           func(c *column) bool { return c.ODataType == "LookupAttributeMetadata" },
	"DateTimeAttributeMetadata":         func(c *column) bool { return c.ODataType == "DateTimeAttributeMetadata" },
	"IntegerAttributeMetadata":          func(c *column) bool { return c.ODataType == "IntegerAttributeMetadata" },
	"BigIntAttributeMetadata":           func(c *column) bool { return c.ODataType == "BigIntAttributeMetadata" },
	"MoneyAttributeMetadata":            func(c *column) bool { return c.ODataType == "MoneyAttributeMetadata" },
	"DoubleAttributeMetadata":           func(c *column) bool { return c.ODataType == "DoubleAttributeMetadata" },
	"DecimalAttributeMetadata":          func(c *column) bool { return c.ODataType == "DecimalAttributeMetadata" },
	"BooleanAttributeMetadata":          func(c *column) bool { return c.ODataType == "BooleanAttributeMetadata" },
	"PicklistAttributeMetadata":         func(c *column) bool { return c.ODataType == "PicklistAttributeMetadata" },
	"StateAttributeMetadata":            func(c *column) bool { return c.ODataType == "StateAttributeMetadata" },
	"StatusAttributeMetadata":           func(c *column) bool { return c.ODataType == "StatusAttributeMetadata" },
	"UniqueIdentifierAttributeMetadata": func(c *column) bool { return c.ODataType == "UniqueIdentifierAttributeMetadata" },
	"EntityNameAttributeMetadata":       func(c *column) bool { return c.ODataType == "EntityNameAttributeMetadata" },
	"ImageAttributeMetadata":            func(c *column) bool { return c.ODataType == "ImageAttributeMetadata" },
	"EnumAttributeMetadata": func(c *column) bool {
		switch c.ODataType {
		case "PicklistAttributeMetadata", "StateAttributeMetadata", "StatusAttributeMetadata", "BooleanAttributeMetadata":
			return true
		}
		return false
	},
}

// derivedPropNames lists the properties a cast makes selectable.
func derivedPropNames(cast string) map[string]bool {
	m := map[string]bool{}
	sample := map[string]*column{
		"StringAttributeMetadata": {ODataType: "StringAttributeMetadata"}, "MemoAttributeMetadata": {ODataType: "MemoAttributeMetadata"},
		"LookupAttributeMetadata": {ODataType: "LookupAttributeMetadata"}, "DateTimeAttributeMetadata": {ODataType: "DateTimeAttributeMetadata"},
		"IntegerAttributeMetadata": {ODataType: "IntegerAttributeMetadata"}, "BigIntAttributeMetadata": {ODataType: "BigIntAttributeMetadata"},
		"MoneyAttributeMetadata": {ODataType: "MoneyAttributeMetadata"}, "DoubleAttributeMetadata": {ODataType: "DoubleAttributeMetadata"},
		"DecimalAttributeMetadata": {ODataType: "DecimalAttributeMetadata"}, "BooleanAttributeMetadata": {ODataType: "BooleanAttributeMetadata"},
		"PicklistAttributeMetadata": {ODataType: "PicklistAttributeMetadata"}, "StateAttributeMetadata": {ODataType: "StateAttributeMetadata"},
		"StatusAttributeMetadata": {ODataType: "StatusAttributeMetadata"}, "ImageAttributeMetadata": {ODataType: "ImageAttributeMetadata"},
		"EnumAttributeMetadata": {ODataType: "PicklistAttributeMetadata"},
	}[cast]
	if sample != nil {
		for _, p := range attributeDerived(sample) {
			m[p.k] = true
		}
	}
	return m
}

// mapEnv resolves $filter paths ("RequiredLevel/Value") inside metadata objects.
type mapEnv struct{ typ string }

func (m mapEnv) typeName() string { return m.typ }

func (m mapEnv) resolve(path string) (accessor, string, *apiError) {
	parts := strings.Split(path, "/")
	return func(rec any) value {
		cur := any(rec.(omap))
		for _, p := range parts {
			o, ok := cur.(omap)
			if !ok {
				return value{}
			}
			if cur, ok = o.get(p); !ok {
				return value{}
			}
		}
		switch x := cur.(type) {
		case string:
			return value{kind: vString, s: x}
		case bool:
			if x {
				return value{kind: vBool, i: 1}
			}
			return value{kind: vBool}
		case int:
			return value{kind: vInt, i: int64(x)}
		case int64:
			return value{kind: vInt, i: x}
		case float64:
			return value{kind: vFloat, f: x}
		}
		return value{}
	}, "", nil
}

// selectProps projects obj to the selected properties (plus MetadataId and @odata.type, always returned).
func selectProps(obj omap, sel []string) omap {
	if sel == nil {
		return obj
	}
	want := map[string]bool{"MetadataId": true, "@odata.type": true}
	for _, s := range sel {
		want[s] = true
	}
	out := make(omap, 0, len(sel)+2)
	for _, p := range obj {
		if want[p.k] {
			out = append(out, p)
		}
	}
	return out
}

func parseMetaSelect(s, typ string, allowed ...map[string]bool) ([]string, *apiError) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		ok := false
		for _, a := range allowed {
			ok = ok || a[name]
		}
		if !ok {
			return nil, errNoPropertyType(name, typ)
		}
		out = append(out, name)
	}
	return out, nil
}

func errNoPropertyType(name, typ string) *apiError {
	return newError(http.StatusBadRequest, codeODataParse, "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", name, typ)
}

// expandOptions parses "Attributes($select=a,b;$filter=...)".
func expandOptions(s string) (string, map[string]string, *apiError) {
	name, rest, has := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	opts := map[string]string{}
	if !has {
		return name, opts, nil
	}
	if !strings.HasSuffix(rest, ")") {
		return "", nil, errBadRequest("Syntax error in '$expand=%s'.", s)
	}
	for _, item := range splitOutsideQuotes(strings.TrimSuffix(rest, ")"), ';') {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return "", nil, errBadRequest("Syntax error in '$expand=%s'.", s)
		}
		opts[strings.TrimSpace(k)] = v
	}
	return name, opts, nil
}

// metaTable finds the table of an EntityDefinitions key: LogicalName='x' or a MetadataId.
func (e *Emulator) metaTable(key string) (*table, *apiError) {
	if v, ok := strings.CutPrefix(key, "LogicalName="); ok {
		name := strings.Trim(v, "'")
		if t := e.byLogical[name]; t != nil {
			return t, nil
		}
		return nil, newError(http.StatusNotFound, codeObjectDoesNotExist, "Could not find entity with logical name %s.", name)
	}
	if id, ok := parseGUID(strings.TrimPrefix(key, "MetadataId=")); ok {
		for _, t := range e.tables {
			if t.MetadataID == id {
				return t, nil
			}
		}
		return nil, newError(http.StatusNotFound, codeObjectDoesNotExist, "Could not find entity with MetadataId %s.", guidString(id))
	}
	return nil, errBadRequest("The key '%s' of EntityDefinitions must be LogicalName='<name>' or a MetadataId.", key)
}

// serveMetadata answers EntityDefinitions requests. Callers hold the read lock.
func (e *Emulator) serveMetadata(c *opCtx, segs []segment, rawQuery string) response {
	q, aerr := parseQuery(rawQuery)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	base := e.baseURL() + "$metadata#"
	root := segs[0]
	if !root.hasKey {
		if len(segs) > 1 {
			return e.fail(c, errSegment(segs[1].name))
		}
		sel, aerr := parseMetaSelect(q.get("$select"), "EntityMetadata", entityPropNames)
		if aerr != nil {
			return e.fail(c, aerr)
		}
		var filter *fnode
		if f := q.get("$filter"); f != "" {
			if filter, aerr = compileFilter(f, mapEnv{typ: "EntityMetadata"}); aerr != nil {
				return e.fail(c, aerr)
			}
		}
		var items []omap
		for _, t := range e.tables {
			obj := e.entityMetadata(t)
			if filter != nil && !filter.eval(obj) {
				continue
			}
			full, aerr := e.expandEntity(t, obj, q.get("$expand"))
			if aerr != nil {
				return e.fail(c, aerr)
			}
			items = append(items, selectProps(full, keepExpanded(sel, q.get("$expand"))))
		}
		return metaJSON(omap{{"@odata.context", base + "EntityDefinitions" + metaSelectContext(sel)}, {"value", items}})
	}
	t, aerr := e.metaTable(root.key)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	entityPath := "EntityDefinitions(" + root.key + ")"
	if len(segs) == 1 {
		sel, aerr := parseMetaSelect(q.get("$select"), "EntityMetadata", entityPropNames)
		if aerr != nil {
			return e.fail(c, aerr)
		}
		obj, aerr := e.expandEntity(t, e.entityMetadata(t), q.get("$expand"))
		if aerr != nil {
			return e.fail(c, aerr)
		}
		obj = selectProps(obj, keepExpanded(sel, q.get("$expand")))
		return metaJSON(append(omap{{"@odata.context", base + "EntityDefinitions" + metaSelectContext(sel) + "/$entity"}}, obj...))
	}
	second := segs[1]
	switch second.name {
	case "Attributes":
		cast := ""
		if len(segs) == 3 {
			cast = strings.TrimPrefix(segs[2].name, "Microsoft.Dynamics.CRM.")
			if castTypes[cast] == nil || cast == segs[2].name {
				return e.fail(c, errSegment(segs[2].name))
			}
		} else if len(segs) > 3 {
			return e.fail(c, errSegment(segs[3].name))
		}
		allowed := []map[string]bool{basePropNames}
		typ := "AttributeMetadata"
		if cast != "" {
			allowed = append(allowed, derivedPropNames(cast))
			typ = cast
		}
		sel, aerr := parseMetaSelect(q.get("$select"), typ, allowed...)
		if aerr != nil {
			return e.fail(c, aerr)
		}
		if second.hasKey {
			col, aerr := attributeByKey(t, second.key)
			if aerr != nil {
				return e.fail(c, aerr)
			}
			if cast != "" && !castTypes[cast](col) {
				return e.fail(c, newError(http.StatusNotFound, codeObjectDoesNotExist, "The attribute %s is not a %s.", col.Logical, cast))
			}
			obj := selectProps(append(attributeBase(t, col), attributeDerived(col)...), sel)
			ctx := base + entityPath + "/Attributes"
			if cast != "" {
				ctx += "/Microsoft.Dynamics.CRM." + cast
			}
			return metaJSON(append(omap{{"@odata.context", ctx + metaSelectContext(sel) + "/$entity"}}, obj...))
		}
		var filter *fnode
		if f := q.get("$filter"); f != "" {
			if filter, aerr = compileFilter(f, mapEnv{typ: typ}); aerr != nil {
				return e.fail(c, aerr)
			}
		}
		items := e.attributeList(t, cast, sel, filter)
		ctx := base + entityPath + "/Attributes"
		if cast != "" {
			ctx += "/Microsoft.Dynamics.CRM." + cast
		}
		return metaJSON(omap{{"@odata.context", ctx + metaSelectContext(sel)}, {"value", items}})
	case "Privileges":
		var items []omap
		for _, p := range e.privilegeOrder {
			if p.table != t.Logical {
				continue
			}
			items = append(items, omap{{"CanBeBasic", true}, {"CanBeDeep", true}, {"CanBeGlobal", true}, {"CanBeLocal", true},
				{"CanBeEntityReference", false}, {"CanBeParentEntityReference", false}, {"Name", p.name},
				{"PrivilegeId", guidString(p.id)}, {"PrivilegeType", p.action}})
		}
		return metaJSON(omap{{"@odata.context", base + entityPath + "/Privileges"}, {"value", nonNil(items)}})
	case "Keys":
		return metaJSON(omap{{"@odata.context", base + entityPath + "/Keys"}, {"value", []omap{}}})
	}
	return e.fail(c, errSegment(second.name))
}

func nonNil(items []omap) []omap {
	if items == nil {
		return []omap{}
	}
	return items
}

func (e *Emulator) attributeList(t *table, cast string, sel []string, filter *fnode) []omap {
	items := []omap{}
	for _, col := range t.cols {
		if cast != "" && !castTypes[cast](col) {
			continue
		}
		obj := attributeBase(t, col)
		if sel == nil || cast != "" {
			obj = append(obj, attributeDerived(col)...)
		}
		if filter != nil && !filter.eval(obj) {
			continue
		}
		items = append(items, selectProps(obj, sel))
	}
	return items
}

func attributeByKey(t *table, key string) (*column, *apiError) {
	if v, ok := strings.CutPrefix(key, "LogicalName="); ok {
		name := strings.Trim(v, "'")
		if c := t.byLogical[name]; c != nil {
			return c, nil
		}
		return nil, newError(http.StatusNotFound, codeObjectDoesNotExist, "Could not find attribute with logical name %s on entity %s.", name, t.Logical)
	}
	if id, ok := parseGUID(strings.TrimPrefix(key, "MetadataId=")); ok {
		for _, c := range t.cols {
			if c.MetadataID == id {
				return c, nil
			}
		}
		return nil, newError(http.StatusNotFound, codeObjectDoesNotExist, "Could not find attribute with MetadataId %s.", guidString(id))
	}
	return nil, errBadRequest("The key '%s' of Attributes must be LogicalName='<name>' or a MetadataId.", key)
}

// expandEntity adds $expand=Attributes(...) (or Keys) to an entity object.
func (e *Emulator) expandEntity(t *table, obj omap, expand string) (omap, *apiError) {
	if strings.TrimSpace(expand) == "" {
		return obj, nil
	}
	for _, item := range splitOutsideParens(expand) {
		name, opts, aerr := expandOptions(item)
		if aerr != nil {
			return nil, aerr
		}
		switch name {
		case "Attributes":
			sel, aerr := parseMetaSelect(opts["$select"], "AttributeMetadata", basePropNames)
			if aerr != nil {
				return nil, aerr
			}
			var filter *fnode
			if f := opts["$filter"]; f != "" {
				if filter, aerr = compileFilter(f, mapEnv{typ: "AttributeMetadata"}); aerr != nil {
					return nil, aerr
				}
			}
			obj = append(obj, kv{"Attributes", e.attributeList(t, "", sel, filter)})
		case "Keys":
			obj = append(obj, kv{"Keys", []omap{}})
		default:
			return nil, newError(http.StatusNotImplemented, codeUnexpected, "Expanding '%s' of EntityDefinitions is not emulated by the sandbox.", name)
		}
	}
	return obj, nil
}

func splitOutsideParens(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// keepExpanded adds expanded navigation names to a $select so selectProps keeps them.
func keepExpanded(sel []string, expand string) []string {
	if sel == nil || expand == "" {
		return sel
	}
	for _, item := range splitOutsideParens(expand) {
		name, _, _ := strings.Cut(item, "(")
		sel = append(sel, strings.TrimSpace(name))
	}
	return sel
}

func metaSelectContext(sel []string) string {
	if len(sel) == 0 {
		return ""
	}
	return "(" + strings.Join(sel, ",") + ")"
}

func metaJSON(obj omap) response {
	b, err := json.Marshal(obj)
	if err != nil {
		return errorResponse(newError(http.StatusInternalServerError, codeUnexpected, "rendering metadata: %v", err), false)
	}
	return jsonResponse(http.StatusOK, b)
}
