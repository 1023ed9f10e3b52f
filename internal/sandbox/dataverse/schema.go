package dataverse

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// AttributeType values (spec 3.3), as the metadata serializes them.
const (
	atBoolean          = "Boolean"
	atCustomer         = "Customer"
	atDateTime         = "DateTime"
	atDecimal          = "Decimal"
	atDouble           = "Double"
	atInteger          = "Integer"
	atLookup           = "Lookup"
	atMemo             = "Memo"
	atMoney            = "Money"
	atOwner            = "Owner"
	atPicklist         = "Picklist"
	atState            = "State"
	atStatus           = "Status"
	atString           = "String"
	atUniqueidentifier = "Uniqueidentifier"
	atVirtual          = "Virtual"
	atBigInt           = "BigInt"
	atEntityName       = "EntityName"
)

// RequiredLevel values (spec 3.2).
const (
	reqNone                = "None"
	reqSystemRequired      = "SystemRequired"
	reqApplicationRequired = "ApplicationRequired"
	reqRecommended         = "Recommended"
)

// storage says how a column's value is held in a row's encoded blob.
type storage uint8

const (
	stNone   storage = iota // not stored (derived or row-struct field)
	stString                // strings, memos, base64 images
	stInt                   // integers, picklists, states, statuses, big ints
	stBool
	stFloat  // double, decimal, money
	stTime   // unix seconds, UTC
	stDate   // unix seconds of midnight UTC (DateOnly behaviour)
	stLookup // target table index + GUID
)

// source says where a column's value comes from when a row is read.
type source uint8

const (
	srcBlob source = iota
	srcID
	srcCreatedOn
	srcModifiedOn
	srcCreatedBy
	srcModifiedBy
	srcVersion
	srcDerived
)

type option struct {
	Value int64
	Label string
	State int64 // for Status options: the statecode this status belongs to
}

// column is one attribute of a table: its metadata (spec 3.2, 9) and how the emulator stores and exposes it.
type column struct {
	Logical, Schema string
	Type            string // AttributeType
	TypeName        string // AttributeTypeName.Value
	ODataType       string // derived metadata type, e.g. StringAttributeMetadata
	MaxLength       int
	MinValue        float64
	MaxValue        float64
	HasRange        bool
	Precision       int
	Required        string
	ValidCreate     bool
	ValidUpdate     bool
	ValidRead       bool
	Targets         []string
	AttributeOf     string
	Format          string
	DateOnly        bool
	Options         []option
	Custom          bool
	PrimaryID       bool
	PrimaryName     bool
	DisplayName     string
	MetadataID      uuid.UUID
	ColumnNumber    int

	store  storage
	src    source
	slot   int                  // blob slot (srcBlob only)
	derive func(*rowView) value // srcDerived only
	// prop is the Web API property name: the logical name, "_x_value" for lookups, "" when the column is
	// not a property of the Web API entity type (EntityName and name shadow columns). A table definition may
	// set it explicitly.
	prop string
	// email marks columns whose format the server checks (spec 9.1 [obs]).
	email bool
}

// navProp is a single-valued navigation property that binds a lookup column (spec 4.6).
type navProp struct {
	name   string
	col    *column
	target string // logical name of the target table; "" for the owner (systemuser or team by entity set)
}

// table is one Dataverse table: metadata, Web API shape, and its rows.
type table struct {
	Logical, Set             string
	Schema, CollectionSchema string
	DisplayName, DisplayPl   string
	OTC                      int
	PrimaryID, PrimaryName   string
	Ownership                string
	MetadataID               uuid.UUID
	ChangeTracking           bool
	Custom                   bool
	// system tables (teams, users, ...) are maintained by the emulator and read-only through the Web API.
	system bool

	cols      []*column
	byLogical map[string]*column
	byProp    map[string]*column
	navs      map[string]*navProp
	navOrder  []*navProp
	nslots    int
	idx       int // position in Emulator.tables
	privs     tablePrivileges
	rowStore
}

func (t *table) col(logical string) *column { return t.byLogical[logical] }

// metadataID derives a stable MetadataId, so repeated runs describe the same schema identically.
func metadataID(parts ...string) uuid.UUID {
	return uuid.NewSHA1(metadataNamespace, []byte(strings.Join(parts, "/")))
}

var metadataNamespace = uuid.MustParse("6f1e0c38-4e0b-4f1e-9c3e-5a1d2c7b8e90")

// odataTypeFor maps an AttributeType to its derived metadata type (spec 3.2 casts).
func odataTypeFor(c *column) string {
	switch c.Type {
	case atString:
		return "StringAttributeMetadata"
	case atMemo:
		return "MemoAttributeMetadata"
	case atLookup, atCustomer, atOwner:
		return "LookupAttributeMetadata"
	case atUniqueidentifier:
		return "UniqueIdentifierAttributeMetadata"
	case atDateTime:
		return "DateTimeAttributeMetadata"
	case atInteger:
		return "IntegerAttributeMetadata"
	case atBigInt:
		return "BigIntAttributeMetadata"
	case atBoolean:
		return "BooleanAttributeMetadata"
	case atPicklist:
		return "PicklistAttributeMetadata"
	case atState:
		return "StateAttributeMetadata"
	case atStatus:
		return "StatusAttributeMetadata"
	case atMoney:
		return "MoneyAttributeMetadata"
	case atDouble:
		return "DoubleAttributeMetadata"
	case atDecimal:
		return "DecimalAttributeMetadata"
	case atEntityName:
		return "EntityNameAttributeMetadata"
	case atVirtual:
		if c.TypeName == "ImageType" {
			return "ImageAttributeMetadata"
		}
		return "AttributeMetadata"
	}
	return "AttributeMetadata"
}

func storageFor(typ string, dateOnly bool) storage {
	switch typ {
	case atString, atMemo, atVirtual:
		return stString
	case atInteger, atPicklist, atState, atStatus, atBigInt:
		return stInt
	case atBoolean:
		return stBool
	case atDouble, atDecimal, atMoney:
		return stFloat
	case atDateTime:
		if dateOnly {
			return stDate
		}
		return stTime
	case atLookup, atCustomer, atOwner, atUniqueidentifier:
		return stLookup
	}
	return stNone
}

// edmType is the OData primitive type of a column, used in payload conversion errors.
func edmType(c *column) string {
	switch c.Type {
	case atString, atMemo, atEntityName:
		return "Edm.String"
	case atInteger, atPicklist, atState, atStatus:
		return "Edm.Int32"
	case atBigInt:
		return "Edm.Int64"
	case atBoolean:
		return "Edm.Boolean"
	case atDateTime:
		if c.DateOnly {
			return "Edm.Date"
		}
		return "Edm.DateTimeOffset"
	case atDecimal, atMoney:
		return "Edm.Decimal"
	case atDouble:
		return "Edm.Double"
	case atUniqueidentifier, atLookup, atCustomer, atOwner:
		return "Edm.Guid"
	case atVirtual:
		return "Edm.Binary"
	}
	return "Edm.String"
}

// tableBuilder assembles a table's columns in metadata order.
type tableBuilder struct{ t *table }

func newTable(logical, set, schema, collectionSchema, display, displayPl string, otc int, primaryID, primaryName, ownership string) *tableBuilder {
	return &tableBuilder{t: &table{
		Logical: logical, Set: set, Schema: schema, CollectionSchema: collectionSchema,
		DisplayName: display, DisplayPl: displayPl, OTC: otc, PrimaryID: primaryID, PrimaryName: primaryName,
		Ownership: ownership, MetadataID: metadataID("entity", logical),
		byLogical: map[string]*column{}, byProp: map[string]*column{}, navs: map[string]*navProp{},
	}}
}

// add appends a column, assigning its storage slot, Web API property name and MetadataId.
func (b *tableBuilder) add(c *column) *column {
	t := b.t
	if c.Schema == "" {
		c.Schema = c.Logical
	}
	if c.DisplayName == "" {
		c.DisplayName = c.Schema
	}
	c.MetadataID = metadataID("attribute", t.Logical, c.Logical)
	c.ColumnNumber = len(t.cols) + 1
	if c.ODataType == "" {
		c.ODataType = odataTypeFor(c)
	}
	if c.TypeName == "" {
		c.TypeName = c.Type + "Type"
	}
	if c.store == stNone && c.src == srcBlob {
		c.store = storageFor(c.Type, c.DateOnly)
	}
	if c.src == srcBlob {
		c.slot = t.nslots
		t.nslots++
	} else {
		c.slot = -1
	}
	switch {
	case c.prop != "":
		// set explicitly by the table definition
	case c.Type == atEntityName || (c.AttributeOf != "" && c.Type == atString):
		c.prop = "" // shadow columns are not properties of the Web API entity type
	case c.Type == atLookup || c.Type == atCustomer || c.Type == atOwner:
		c.prop = "_" + c.Logical + "_value"
	default:
		c.prop = c.Logical
	}
	t.cols = append(t.cols, c)
	t.byLogical[c.Logical] = c
	if c.prop != "" {
		t.byProp[c.prop] = c
	}
	return c
}

func (b *tableBuilder) nav(name string, c *column, target string) {
	n := &navProp{name: name, col: c, target: target}
	b.t.navs[name] = n
	b.t.navOrder = append(b.t.navOrder, n)
}

func str(logical, schema string, max int, req string) *column {
	return &column{Logical: logical, Schema: schema, Type: atString, MaxLength: max, Required: req,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Format: "Text"}
}

func (b *tableBuilder) primaryKey() {
	t := b.t
	b.add(&column{Logical: t.PrimaryID, Schema: t.Schema + "Id", Type: atUniqueidentifier, Required: reqSystemRequired,
		ValidCreate: true, ValidRead: true, PrimaryID: true, src: srcID, store: stNone})
}

// ownership adds the owner columns of a user-owned table (spec 9: ownerid Owner SystemRequired).
func (b *tableBuilder) ownership() {
	owner := b.add(&column{Logical: "ownerid", Schema: "OwnerId", Type: atOwner, Required: reqSystemRequired,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"systemuser", "team"}})
	b.nav("ownerid", owner, "")
	b.add(&column{Logical: "owneridtype", Schema: "OwnerIdType", Type: atEntityName, Required: reqSystemRequired,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, AttributeOf: "ownerid", src: srcDerived,
		derive: func(v *rowView) value { return lookupTypeOf(v, owner) }})
	b.add(&column{Logical: "owneridname", Schema: "OwnerIdName", Type: atString, MaxLength: 100, Required: reqNone,
		ValidRead: true, AttributeOf: "ownerid", src: srcDerived,
		derive: func(v *rowView) value { return v.lookupName(owner) }})
	b.add(&column{Logical: "owningteam", Schema: "OwningTeam", Type: atLookup, Required: reqNone, ValidRead: true,
		Targets: []string{"team"}, src: srcDerived,
		derive: func(v *rowView) value { return v.ownerIf(owner, "team") }})
	b.add(&column{Logical: "owninguser", Schema: "OwningUser", Type: atLookup, Required: reqNone, ValidRead: true,
		Targets: []string{"systemuser"}, src: srcDerived,
		derive: func(v *rowView) value { return v.ownerIf(owner, "systemuser") }})
	b.add(&column{Logical: "owningbusinessunit", Schema: "OwningBusinessUnit", Type: atLookup, Required: reqNone,
		ValidRead: true, Targets: []string{"businessunit"}, src: srcDerived,
		derive: func(v *rowView) value { return v.owningBusinessUnit(owner) }})
}

// system adds the audit columns every row carries (spec 5.3).
func (b *tableBuilder) system() {
	b.add(&column{Logical: "createdon", Schema: "CreatedOn", Type: atDateTime, Required: reqNone, ValidRead: true,
		Format: "DateAndTime", src: srcCreatedOn})
	b.add(&column{Logical: "modifiedon", Schema: "ModifiedOn", Type: atDateTime, Required: reqNone, ValidRead: true,
		Format: "DateAndTime", src: srcModifiedOn})
	b.add(&column{Logical: "createdby", Schema: "CreatedBy", Type: atLookup, Required: reqNone, ValidRead: true,
		Targets: []string{"systemuser"}, src: srcCreatedBy})
	b.add(&column{Logical: "modifiedby", Schema: "ModifiedBy", Type: atLookup, Required: reqNone, ValidRead: true,
		Targets: []string{"systemuser"}, src: srcModifiedBy})
	b.add(&column{Logical: "createdonbehalfby", Schema: "CreatedOnBehalfBy", Type: atLookup, Required: reqNone,
		ValidRead: true, Targets: []string{"systemuser"}})
	b.add(&column{Logical: "modifiedonbehalfby", Schema: "ModifiedOnBehalfBy", Type: atLookup, Required: reqNone,
		ValidRead: true, Targets: []string{"systemuser"}})
	b.add(&column{Logical: "versionnumber", Schema: "VersionNumber", Type: atBigInt, Required: reqNone, ValidRead: true,
		MinValue: -9223372036854775808, MaxValue: 9223372036854775807, HasRange: true, src: srcVersion})
}

func (b *tableBuilder) overriddenCreatedOn() {
	b.add(&column{Logical: "overriddencreatedon", Schema: "OverriddenCreatedOn", Type: atDateTime, Required: reqNone,
		ValidCreate: true, ValidRead: true, DateOnly: true, Format: "DateOnly"})
}

// stateStatus adds statecode (not valid on create, spec 9) and statuscode.
func (b *tableBuilder) stateStatus() {
	b.add(&column{Logical: "statecode", Schema: "StateCode", Type: atState, Required: reqSystemRequired,
		ValidUpdate: true, ValidRead: true,
		Options: []option{{Value: 0, Label: "Active"}, {Value: 1, Label: "Inactive"}}})
	b.add(&column{Logical: "statuscode", Schema: "StatusCode", Type: atStatus, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true,
		Options: []option{{Value: 1, Label: "Active", State: 0}, {Value: 2, Label: "Inactive", State: 1}}})
}

// image adds entityimage, a Virtual column (AttributeTypeName ImageType) that mapping validation rejects.
func (b *tableBuilder) image() {
	b.add(&column{Logical: "entityimage", Schema: "EntityImage", Type: atVirtual, TypeName: "ImageType",
		Required: reqNone, ValidCreate: true, ValidUpdate: true, ValidRead: true})
}

func (b *tableBuilder) done() *table { return b.t }

func contactTable() *table {
	b := newTable("contact", "contacts", "Contact", "Contacts", "Contact", "Contacts", 2, "contactid", "fullname", "UserOwned")
	b.primaryKey()
	first := b.add(str("firstname", "FirstName", 50, reqRecommended))
	last := b.add(str("lastname", "LastName", 50, reqApplicationRequired))
	b.add(&column{Logical: "fullname", Schema: "FullName", Type: atString, MaxLength: 160, Required: reqNone,
		ValidRead: true, PrimaryName: true, Format: "Text", src: srcDerived,
		derive: func(v *rowView) value { return fullName(v, first, last) }})
	b.add(str("salutation", "Salutation", 100, reqNone))
	b.add(str("assistantname", "AssistantName", 100, reqNone))
	b.add(phone(str("assistantphone", "AssistantPhone", 50, reqNone)))
	b.add(&column{Logical: "birthdate", Schema: "BirthDate", Type: atDateTime, Required: reqNone, ValidCreate: true,
		ValidUpdate: true, ValidRead: true, DateOnly: true, Format: "DateOnly"})
	b.add(str("department", "Department", 100, reqNone))
	b.add(&column{Logical: "description", Schema: "Description", Type: atMemo, MaxLength: 2000, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Format: "TextArea"})
	email := str("emailaddress1", "EMailAddress1", 100, reqNone)
	email.Format, email.email = "Email", true
	b.add(email)
	b.add(str("fax", "Fax", 50, reqNone))
	b.add(str("jobtitle", "JobTitle", 100, reqNone))
	b.add(phone(str("mobilephone", "MobilePhone", 50, reqNone)))
	b.add(phone(str("telephone1", "Telephone1", 50, reqNone)))
	b.add(&column{Logical: "donotemail", Schema: "DoNotEMail", Type: atBoolean, Required: reqNone, ValidCreate: true,
		ValidUpdate: true, ValidRead: true})
	b.add(&column{Logical: "preferredcontactmethodcode", Schema: "PreferredContactMethodCode", Type: atPicklist,
		Required: reqNone, ValidCreate: true, ValidUpdate: true, ValidRead: true,
		Options: []option{{Value: 1, Label: "Any"}, {Value: 2, Label: "Email"}, {Value: 3, Label: "Phone"}, {Value: 4, Label: "Fax"}, {Value: 5, Label: "Mail"}}})
	b.add(&column{Logical: "address1_latitude", Schema: "Address1_Latitude", Type: atDouble, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, MinValue: -90, MaxValue: 90, HasRange: true, Precision: 5})
	parent := b.add(&column{Logical: "parentcustomerid", Schema: "ParentCustomerId", Type: atCustomer, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"account", "contact"}})
	b.nav("parentcustomerid_account", parent, "account")
	b.nav("parentcustomerid_contact", parent, "contact")
	b.add(&column{Logical: "parentcustomeridtype", Schema: "ParentCustomerIdType", Type: atEntityName, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, AttributeOf: "parentcustomerid", src: srcDerived,
		derive: func(v *rowView) value { return lookupTypeOf(v, parent) }})
	b.add(&column{Logical: "parentcustomeridname", Schema: "ParentCustomerIdName", Type: atString, MaxLength: 160,
		Required: reqNone, ValidRead: true, AttributeOf: "parentcustomerid", src: srcDerived,
		derive: func(v *rowView) value { return v.lookupName(parent) }})
	b.ownership()
	b.stateStatus()
	b.system()
	b.overriddenCreatedOn()
	b.image()
	return b.done()
}

func accountTable() *table {
	b := newTable("account", "accounts", "Account", "Accounts", "Account", "Accounts", 1, "accountid", "name", "UserOwned")
	b.primaryKey()
	b.add(str("name", "Name", 160, reqApplicationRequired)).PrimaryName = true
	b.add(str("accountnumber", "AccountNumber", 20, reqNone))
	b.add(&column{Logical: "description", Schema: "Description", Type: atMemo, MaxLength: 2000, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Format: "TextArea"})
	email := str("emailaddress1", "EMailAddress1", 100, reqNone)
	email.Format, email.email = "Email", true
	b.add(email)
	b.add(str("fax", "Fax", 50, reqNone))
	b.add(&column{Logical: "numberofemployees", Schema: "NumberOfEmployees", Type: atInteger, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, MinValue: 0, MaxValue: 1000000000, HasRange: true, Format: "None"})
	b.add(str("sic", "SIC", 20, reqNone))
	b.add(phone(str("telephone1", "Telephone1", 50, reqNone)))
	ticker := str("tickersymbol", "TickerSymbol", 10, reqNone)
	ticker.Format = "TickerSymbol"
	b.add(ticker)
	web := str("websiteurl", "WebSiteURL", 200, reqNone)
	web.Format = "Url"
	b.add(web)
	credit := b.add(&column{Logical: "creditlimit", Schema: "CreditLimit", Type: atMoney, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, MinValue: 0, MaxValue: 100000000000000, HasRange: true, Precision: 2})
	b.add(&column{Logical: "creditlimit_base", Schema: "CreditLimit_Base", Type: atMoney, Required: reqNone,
		ValidRead: true, MinValue: -922337203685477, MaxValue: 922337203685477, HasRange: true, Precision: 4, src: srcDerived,
		derive: func(v *rowView) value { return v.get(credit) }})
	b.add(&column{Logical: "industrycode", Schema: "IndustryCode", Type: atPicklist, Required: reqNone, ValidCreate: true,
		ValidUpdate: true, ValidRead: true,
		Options: []option{{Value: 1, Label: "Accounting"}, {Value: 2, Label: "Agriculture and Non-petrol Natural Resource Extraction"},
			{Value: 7, Label: "Consulting"}, {Value: 12, Label: "Financial"}, {Value: 33, Label: "Wholesale"}}})
	b.add(&column{Logical: "donotemail", Schema: "DoNotEMail", Type: atBoolean, Required: reqNone, ValidCreate: true,
		ValidUpdate: true, ValidRead: true})
	b.add(&column{Logical: "address1_latitude", Schema: "Address1_Latitude", Type: atDouble, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, MinValue: -90, MaxValue: 90, HasRange: true, Precision: 5})
	pa := b.add(&column{Logical: "parentaccountid", Schema: "ParentAccountId", Type: atLookup, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"account"}})
	b.nav("parentaccountid", pa, "account")
	pc := b.add(&column{Logical: "primarycontactid", Schema: "PrimaryContactId", Type: atLookup, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"contact"}})
	b.nav("primarycontactid", pc, "contact")
	b.ownership()
	b.stateStatus()
	b.system()
	b.overriddenCreatedOn()
	b.image()
	return b.done()
}

func phone(c *column) *column { c.Format = "Phone"; return c }

// The system tables below are read-only through the Web API; the emulator fills them at start.

func systemUserTable() *table {
	b := newTable("systemuser", "systemusers", "SystemUser", "SystemUsers", "User", "Users", 8, "systemuserid", "fullname", "BusinessOwned")
	b.primaryKey()
	b.add(str("fullname", "FullName", 200, reqNone)).PrimaryName = true
	b.add(str("firstname", "FirstName", 64, reqNone))
	b.add(str("lastname", "LastName", 64, reqNone))
	b.add(str("domainname", "DomainName", 1024, reqSystemRequired))
	b.add(str("internalemailaddress", "InternalEMailAddress", 100, reqNone))
	b.add(&column{Logical: "applicationid", Schema: "ApplicationId", Type: atUniqueidentifier, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true})
	b.add(&column{Logical: "azureactivedirectoryobjectid", Schema: "AzureActiveDirectoryObjectId", Type: atUniqueidentifier,
		Required: reqNone, ValidCreate: true, ValidUpdate: true, ValidRead: true})
	bu := b.add(&column{Logical: "businessunitid", Schema: "BusinessUnitId", Type: atLookup, Required: reqSystemRequired,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"businessunit"}})
	b.nav("businessunitid", bu, "businessunit")
	b.add(&column{Logical: "isdisabled", Schema: "IsDisabled", Type: atBoolean, Required: reqNone, ValidRead: true})
	b.add(&column{Logical: "accessmode", Schema: "AccessMode", Type: atPicklist, Required: reqSystemRequired,
		ValidCreate: true, ValidUpdate: true, ValidRead: true,
		Options: []option{{Value: 0, Label: "Read-Write"}, {Value: 4, Label: "Non-interactive"}}})
	b.system()
	return b.done()
}

func teamTable() *table {
	b := newTable("team", "teams", "Team", "Teams", "Team", "Teams", 9, "teamid", "name", "BusinessOwned")
	b.primaryKey()
	b.add(str("name", "Name", 160, reqSystemRequired)).PrimaryName = true
	b.add(&column{Logical: "teamtype", Schema: "TeamType", Type: atPicklist, Required: reqSystemRequired,
		ValidCreate: true, ValidRead: true,
		Options: []option{{Value: 0, Label: "Owner"}, {Value: 1, Label: "Access"}, {Value: 2, Label: "Security Group"}, {Value: 3, Label: "Office Group"}}})
	bu := b.add(&column{Logical: "businessunitid", Schema: "BusinessUnitId", Type: atLookup, Required: reqSystemRequired,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"businessunit"}})
	b.nav("businessunitid", bu, "businessunit")
	b.add(&column{Logical: "azureactivedirectoryobjectid", Schema: "AzureActiveDirectoryObjectId", Type: atUniqueidentifier,
		Required: reqNone, ValidCreate: true, ValidUpdate: true, ValidRead: true})
	b.add(&column{Logical: "membershiptype", Schema: "MembershipType", Type: atPicklist, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true,
		Options: []option{{Value: 0, Label: "Members and guests"}, {Value: 1, Label: "Members"}, {Value: 2, Label: "Owners"}, {Value: 3, Label: "Guests"}}})
	b.add(&column{Logical: "isdefault", Schema: "IsDefault", Type: atBoolean, Required: reqNone, ValidRead: true})
	b.add(&column{Logical: "description", Schema: "Description", Type: atMemo, MaxLength: 2000, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Format: "TextArea"})
	b.system()
	return b.done()
}

func businessUnitTable() *table {
	b := newTable("businessunit", "businessunits", "BusinessUnit", "BusinessUnits", "Business Unit", "Business Units", 10, "businessunitid", "name", "BusinessOwned")
	b.primaryKey()
	b.add(str("name", "Name", 160, reqSystemRequired)).PrimaryName = true
	p := b.add(&column{Logical: "parentbusinessunitid", Schema: "ParentBusinessUnitId", Type: atLookup, Required: reqNone,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"businessunit"}})
	b.nav("parentbusinessunitid", p, "businessunit")
	b.system()
	return b.done()
}

func roleTable() *table {
	b := newTable("role", "roles", "Role", "Roles", "Security Role", "Security Roles", 1036, "roleid", "name", "BusinessOwned")
	b.primaryKey()
	b.add(str("name", "Name", 100, reqSystemRequired)).PrimaryName = true
	bu := b.add(&column{Logical: "businessunitid", Schema: "BusinessUnitId", Type: atLookup, Required: reqSystemRequired,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Targets: []string{"businessunit"}})
	b.nav("businessunitid", bu, "businessunit")
	b.system()
	return b.done()
}

func sdkMessageTable() *table {
	b := newTable("sdkmessage", "sdkmessages", "SdkMessage", "SdkMessages", "Sdk Message", "Sdk Messages", 4606, "sdkmessageid", "name", "OrganizationOwned")
	b.primaryKey()
	b.add(str("name", "Name", 256, reqSystemRequired)).PrimaryName = true
	b.system()
	return b.done()
}

// sdkMessageFilterTable answers the bulk-message availability probe of spec 4.7:
// sdkmessagefilters?$filter=sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'contact'.
func sdkMessageFilterTable() *table {
	b := newTable("sdkmessagefilter", "sdkmessagefilters", "SdkMessageFilter", "SdkMessageFilters", "Sdk Message Filter", "Sdk Message Filters", 4607, "sdkmessagefilterid", "", "OrganizationOwned")
	b.primaryKey()
	m := b.add(&column{Logical: "sdkmessageid", Schema: "SdkMessageId", Type: atLookup, Required: reqSystemRequired,
		ValidCreate: true, ValidRead: true, Targets: []string{"sdkmessage"}})
	b.nav("sdkmessageid", m, "sdkmessage")
	// primaryobjecttypecode is an EntityName column, which the Web API normally hides, but the probe filters
	// on it, so it is a property here.
	b.add(&column{Logical: "primaryobjecttypecode", Schema: "PrimaryObjectTypeCode", Type: atEntityName, Required: reqSystemRequired,
		ValidCreate: true, ValidRead: true, store: stString, prop: "primaryobjecttypecode"})
	b.add(&column{Logical: "isvisible", Schema: "IsVisible", Type: atBoolean, Required: reqNone, ValidRead: true})
	b.system()
	return b.done()
}

// CustomColumn describes a column added by a test through the admin API (for example new_region, String 100).
type CustomColumn struct {
	LogicalName string `json:"logical_name"`
	SchemaName  string `json:"schema_name,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	// Type is an AttributeType: String, Memo, Integer, BigInt, Boolean, DateTime, Decimal, Double or Money.
	Type          string `json:"type"`
	MaxLength     int    `json:"max_length,omitempty"`
	RequiredLevel string `json:"required_level,omitempty"`
	// DateOnly gives a DateTime column DateOnly behaviour ("YYYY-MM-DD").
	DateOnly bool `json:"date_only,omitempty"`
	// MinValue and MaxValue bound numeric columns; both zero means the type's default range.
	MinValue float64 `json:"min_value,omitempty"`
	MaxValue float64 `json:"max_value,omitempty"`
}

// customColumn validates a CustomColumn and builds its column.
func customColumn(t *table, spec CustomColumn) (*column, error) {
	name := spec.LogicalName
	if name == "" || strings.ToLower(name) != name || !strings.Contains(name, "_") {
		return nil, fmt.Errorf("custom column logical_name %q must be lower case with a publisher prefix, such as new_region", name)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return nil, fmt.Errorf("custom column logical_name %q may hold only a-z, 0-9 and _", name)
		}
	}
	if t.byLogical[name] != nil {
		return nil, fmt.Errorf("table %s already has a column %q", t.Logical, name)
	}
	if t.system {
		return nil, fmt.Errorf("table %s is a system table; custom columns go on contact or account", t.Logical)
	}
	req := spec.RequiredLevel
	switch req {
	case "":
		req = reqNone
	case reqNone, reqApplicationRequired, reqRecommended:
	default:
		return nil, fmt.Errorf("custom column required_level %q must be None, ApplicationRequired or Recommended", spec.RequiredLevel)
	}
	c := &column{Logical: name, Schema: spec.SchemaName, DisplayName: spec.DisplayName, Type: spec.Type, Required: req,
		ValidCreate: true, ValidUpdate: true, ValidRead: true, Custom: true}
	if c.Schema == "" {
		c.Schema = name
	}
	switch spec.Type {
	case atString, atMemo:
		limit := 4000
		if spec.Type == atMemo {
			limit = 1048576
		}
		if spec.MaxLength < 1 || spec.MaxLength > limit {
			return nil, fmt.Errorf("custom %s column %q needs max_length between 1 and %d, got %d", spec.Type, name, limit, spec.MaxLength)
		}
		c.MaxLength = spec.MaxLength
		c.Format = "Text"
		if spec.Type == atMemo {
			c.Format = "TextArea"
		}
	case atInteger:
		c.MinValue, c.MaxValue, c.HasRange, c.Format = -2147483648, 2147483647, true, "None"
	case atBigInt:
		c.MinValue, c.MaxValue, c.HasRange = -9223372036854775808, 9223372036854775807, true
	case atDecimal, atDouble:
		c.MinValue, c.MaxValue, c.HasRange, c.Precision = -100000000000, 100000000000, true, 2
	case atMoney:
		c.MinValue, c.MaxValue, c.HasRange, c.Precision = -922337203685477, 922337203685477, true, 2
	case atBoolean:
	case atDateTime:
		c.DateOnly = spec.DateOnly
		c.Format = "DateAndTime"
		if c.DateOnly {
			c.Format = "DateOnly"
		}
	default:
		return nil, fmt.Errorf("custom column type %q is not supported; use String, Memo, Integer, BigInt, Boolean, DateTime, Decimal, Double or Money", spec.Type)
	}
	if (spec.MinValue != 0 || spec.MaxValue != 0) && c.HasRange {
		if spec.MinValue > spec.MaxValue {
			return nil, fmt.Errorf("custom column %q: min_value %v exceeds max_value %v", name, spec.MinValue, spec.MaxValue)
		}
		c.MinValue, c.MaxValue = spec.MinValue, spec.MaxValue
	}
	return c, nil
}
