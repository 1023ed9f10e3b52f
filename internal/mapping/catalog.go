package mapping

import "strings"

// The built-in catalog: the standard columns of Salesforce Contact/Account and Dataverse contact/account
// (as a real org describes them and a real environment's metadata lists them), used by static validation when
// the live schemas are not at hand, and the predefined mappings (docs/architecture.md, "Mapping rules").

// predefinedTables pairs the source objects that have predefined mappings with their destination tables.
var predefinedTables = map[string]string{"Contact": "contact", "Account": "account"}

// Pair is one predefined source → destination column mapping.
type Pair struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// RequiresSynced names a source object that must be synced too for this pair to apply (Contact's
	// AccountId → parentcustomerid needs Account).
	RequiresSynced string `json:"requires_synced,omitempty"`
}

var predefined = map[string][]Pair{
	"Contact": {
		{Source: "Id", Destination: "contactid"},
		{Source: "AssistantName", Destination: "assistantname"},
		{Source: "AssistantPhone", Destination: "assistantphone"},
		{Source: "Birthdate", Destination: "birthdate"},
		{Source: "Department", Destination: "department"},
		{Source: "Description", Destination: "description"},
		{Source: "Email", Destination: "emailaddress1"},
		{Source: "Fax", Destination: "fax"},
		{Source: "FirstName", Destination: "firstname"},
		{Source: "LastName", Destination: "lastname"},
		{Source: "MobilePhone", Destination: "mobilephone"},
		{Source: "Salutation", Destination: "salutation"},
		{Source: "Phone", Destination: "telephone1"},
		{Source: "AccountId", Destination: "parentcustomerid", RequiresSynced: "Account"},
	},
	"Account": {
		{Source: "Id", Destination: "accountid"},
		{Source: "AccountNumber", Destination: "accountnumber"},
		{Source: "Description", Destination: "description"},
		{Source: "Fax", Destination: "fax"},
		{Source: "Name", Destination: "name"},
		{Source: "NumberOfEmployees", Destination: "numberofemployees"},
		{Source: "Sic", Destination: "sic"},
		{Source: "Phone", Destination: "telephone1"},
		{Source: "TickerSymbol", Destination: "tickersymbol"},
	},
}

// PredefinedTables returns the source objects that have predefined mappings, with their destinations.
func PredefinedTables() map[string]string {
	out := make(map[string]string, len(predefinedTables))
	for k, v := range predefinedTables {
		out[k] = v
	}
	return out
}

// Predefined returns the predefined mappings of a source object (nil when it has none).
func Predefined(sourceTable string) []Pair {
	src := predefined[canonicalSource(sourceTable)]
	out := make([]Pair, len(src))
	copy(out, src)
	return out
}

func canonicalSource(name string) string {
	for k := range predefined {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func sf(name, typ string, length int, nillable bool, refs ...string) SourceField {
	return SourceField{Name: name, Type: typ, Length: length, Nillable: nillable, ReferenceTo: refs}
}

func nameMember(f SourceField) SourceField { f.CompoundFieldName = "Name"; return f }

var standardSources = map[string]*SourceSchema{
	"Contact": {Object: "Contact", Fields: []SourceField{
		sf("Id", "id", 18, false),
		sf("IsDeleted", "boolean", 0, false),
		sf("AccountId", "reference", 18, true, "Account"),
		nameMember(sf("LastName", "string", 80, false)),
		nameMember(sf("FirstName", "string", 40, true)),
		nameMember(sf("Salutation", "picklist", 40, true)),
		sf("Name", "string", 121, false),
		sf("MailingStreet", "textarea", 255, true), sf("MailingCity", "string", 40, true),
		sf("MailingState", "string", 80, true), sf("MailingPostalCode", "string", 20, true),
		sf("MailingCountry", "string", 80, true),
		sf("Phone", "phone", 40, true), sf("Fax", "phone", 40, true), sf("MobilePhone", "phone", 40, true),
		sf("AssistantPhone", "phone", 40, true), sf("ReportsToId", "reference", 18, true, "Contact"),
		sf("Email", "email", 80, true), sf("Title", "string", 128, true), sf("Department", "string", 80, true),
		sf("AssistantName", "string", 40, true), sf("LeadSource", "picklist", 255, true),
		sf("Birthdate", "date", 0, true), sf("Description", "textarea", 32000, true),
		sf("OtherStreet", "textarea", 255, true), sf("OtherCity", "string", 40, true), sf("OtherState", "string", 80, true),
		sf("OtherPostalCode", "string", 20, true), sf("OtherCountry", "string", 80, true),
		sf("HomePhone", "phone", 40, true), sf("OtherPhone", "phone", 40, true),
		sf("HasOptedOutOfEmail", "boolean", 0, false), sf("DoNotCall", "boolean", 0, false),
		sf("EmailBouncedReason", "string", 255, true), sf("EmailBouncedDate", "datetime", 0, true),
		sf("LastActivityDate", "date", 0, true),
		sf("OwnerId", "reference", 18, false, "User"),
		sf("CreatedDate", "datetime", 0, false), sf("CreatedById", "reference", 18, false, "User"),
		sf("LastModifiedDate", "datetime", 0, false), sf("LastModifiedById", "reference", 18, false, "User"),
		sf("SystemModstamp", "datetime", 0, false),
	}},
	"Account": {Object: "Account", Fields: []SourceField{
		sf("Id", "id", 18, false),
		sf("IsDeleted", "boolean", 0, false),
		sf("Name", "string", 255, false), sf("Type", "picklist", 255, true),
		sf("ParentId", "reference", 18, true, "Account"),
		sf("BillingStreet", "textarea", 255, true), sf("BillingCity", "string", 40, true),
		sf("BillingState", "string", 80, true), sf("BillingPostalCode", "string", 20, true),
		sf("BillingCountry", "string", 80, true),
		sf("Phone", "phone", 40, true), sf("Fax", "phone", 40, true), sf("AccountNumber", "string", 40, true),
		sf("Website", "url", 255, true), sf("Sic", "string", 20, true), sf("Industry", "picklist", 255, true),
		sf("AnnualRevenue", "currency", 0, true), sf("NumberOfEmployees", "int", 0, true),
		sf("TickerSymbol", "string", 20, true), sf("Description", "textarea", 32000, true),
		sf("ShippingStreet", "textarea", 255, true), sf("ShippingCity", "string", 40, true), sf("ShippingState", "string", 80, true),
		sf("ShippingPostalCode", "string", 20, true), sf("ShippingCountry", "string", 80, true),
		sf("Site", "string", 80, true), sf("Ownership", "picklist", 255, true), sf("Rating", "picklist", 255, true),
		sf("AccountSource", "picklist", 255, true), sf("LastActivityDate", "date", 0, true),
		sf("OwnerId", "reference", 18, false, "User"),
		sf("CreatedDate", "datetime", 0, false), sf("CreatedById", "reference", 18, false, "User"),
		sf("LastModifiedDate", "datetime", 0, false), sf("LastModifiedById", "reference", 18, false, "User"),
		sf("SystemModstamp", "datetime", 0, false),
	}},
}

func dc(name, typ string, maxLen int, req string, create, update bool) DestColumn {
	return DestColumn{LogicalName: name, AttributeType: typ, MaxLength: maxLen, RequiredLevel: req, ValidForCreate: create, ValidForUpdate: update}
}

func str(name string, maxLen int) DestColumn {
	return dc(name, "String", maxLen, RequiredNone, true, true)
}

func lookup(name, typ string, targets ...string) DestColumn {
	c := dc(name, typ, 0, RequiredNone, true, true)
	c.Targets = targets
	return c
}

func system(name, typ string) DestColumn { return dc(name, typ, 0, RequiredNone, false, false) }

func common(primary string) []DestColumn {
	owner := lookup("ownerid", "Owner", "systemuser", "team")
	owner.RequiredLevel = RequiredSystem
	return []DestColumn{
		dc(primary, "Uniqueidentifier", 0, RequiredSystem, true, false),
		owner,
		system("owneridtype", "EntityName"),
		system("owningteam", "Lookup"), system("owninguser", "Lookup"), system("owningbusinessunit", "Lookup"),
		system("createdon", "DateTime"), system("modifiedon", "DateTime"),
		system("createdby", "Lookup"), system("modifiedby", "Lookup"),
		dc("statecode", "State", 0, RequiredSystem, false, true),
		dc("statuscode", "Status", 0, RequiredNone, true, true),
		system("versionnumber", "BigInt"),
		dc("entityimage", "Virtual", 0, RequiredNone, true, true),
		str("address1_line1", 250), str("address1_city", 80), str("address1_stateorprovince", 50),
		str("address1_postalcode", 20), str("address1_country", 80),
	}
}

var standardDestinations = map[string]*DestSchema{
	"contact": {Table: "contact", EntitySetName: "contacts", PrimaryID: "contactid", Columns: append(common("contactid"),
		str("assistantname", 100), str("assistantphone", 50),
		DestColumn{LogicalName: "birthdate", AttributeType: "DateTime", RequiredLevel: RequiredNone, ValidForCreate: true, ValidForUpdate: true, DateOnly: true},
		str("department", 100), dc("description", "Memo", 2000, RequiredNone, true, true),
		str("emailaddress1", 100), str("fax", 50),
		dc("firstname", "String", 50, RequiredRecommended, true, true),
		dc("lastname", "String", 50, RequiredApplication, true, true),
		str("mobilephone", 50), str("salutation", 100), str("telephone1", 50), str("jobtitle", 100),
		str("telephone2", 50), str("telephone3", 50), str("emailaddress2", 100), str("emailaddress3", 100),
		str("middlename", 50), str("nickname", 100), str("suffix", 10), str("pager", 50), str("websiteurl", 200),
		str("governmentid", 50), str("employeeid", 50), str("managername", 100), str("managerphone", 50),
		str("spousesname", 100),
		str("address1_line2", 250), str("address1_line3", 250), str("address1_telephone1", 50),
		str("address2_line1", 250), str("address2_city", 80), str("address2_stateorprovince", 50),
		str("address2_postalcode", 20), str("address2_country", 80),
		DestColumn{LogicalName: "anniversary", AttributeType: "DateTime", RequiredLevel: RequiredNone, ValidForCreate: true, ValidForUpdate: true, DateOnly: true},
		dc("donotemail", "Boolean", 0, RequiredNone, true, true), dc("donotphone", "Boolean", 0, RequiredNone, true, true),
		dc("creditlimit", "Money", 0, RequiredNone, true, true), dc("annualincome", "Money", 0, RequiredNone, true, true),
		DestColumn{LogicalName: "numberofchildren", AttributeType: "Integer", RequiredLevel: RequiredNone, ValidForCreate: true, ValidForUpdate: true, MinValue: 0, MaxValue: 1_000_000_000},
		dc("gendercode", "Picklist", 0, RequiredNone, true, true), dc("leadsourcecode", "Picklist", 0, RequiredNone, true, true),
		lookup("parentcustomerid", "Customer", "account", "contact"),
		system("parentcustomeridtype", "EntityName"),
		dc("fullname", "String", 160, RequiredNone, false, false),
	)},
	"account": {Table: "account", EntitySetName: "accounts", PrimaryID: "accountid", Columns: append(common("accountid"),
		str("accountnumber", 20), dc("description", "Memo", 2000, RequiredNone, true, true), str("fax", 50),
		dc("name", "String", 160, RequiredApplication, true, true),
		DestColumn{LogicalName: "numberofemployees", AttributeType: "Integer", RequiredLevel: RequiredNone, ValidForCreate: true, ValidForUpdate: true, MinValue: 0, MaxValue: 1_000_000_000},
		str("sic", 20), str("telephone1", 50), str("tickersymbol", 10), str("websiteurl", 200),
		str("telephone2", 50), str("telephone3", 50), str("emailaddress1", 100), str("emailaddress2", 100),
		str("emailaddress3", 100), str("address1_line2", 250), str("address1_line3", 250),
		str("address2_line1", 250), str("address2_city", 80), str("address2_stateorprovince", 50),
		str("address2_postalcode", 20), str("address2_country", 80),
		dc("marketcap", "Money", 0, RequiredNone, true, true), dc("creditlimit", "Money", 0, RequiredNone, true, true),
		DestColumn{LogicalName: "sharesoutstanding", AttributeType: "Integer", RequiredLevel: RequiredNone, ValidForCreate: true, ValidForUpdate: true, MinValue: 0, MaxValue: 1_000_000_000},
		dc("donotemail", "Boolean", 0, RequiredNone, true, true), dc("donotphone", "Boolean", 0, RequiredNone, true, true),
		dc("industrycode", "Picklist", 0, RequiredNone, true, true), dc("ownershipcode", "Picklist", 0, RequiredNone, true, true),
		dc("revenue", "Money", 0, RequiredNone, true, true),
		lookup("parentaccountid", "Lookup", "account"), lookup("primarycontactid", "Lookup", "contact"),
	)},
}

// StandardSource returns the catalog's schema of a standard Salesforce object, or nil.
func StandardSource(object string) *SourceSchema { return standardSources[canonicalSource(object)] }

// StandardDestination returns the catalog's schema of a standard Dataverse table, or nil.
func StandardDestination(table string) *DestSchema {
	return standardDestinations[strings.ToLower(table)]
}

// isCustomSource reports whether a Salesforce field name is a custom field (the catalog cannot know it).
func isCustomSource(name string) bool { return strings.HasSuffix(strings.ToLower(name), "__c") }

// isCustomDestination reports whether a Dataverse column name carries a publisher prefix (new_region,
// cr8f2_score), which marks a custom column the catalog cannot know.
func isCustomDestination(name string) bool {
	i := strings.IndexByte(name, '_')
	return i > 0 && i < len(name)-1 && !strings.HasPrefix(name, "address")
}
