package schema

// Contact returns the standard Contact object (key prefix 003), its fields as a real org describes them.
func Contact() *Object {
	salutations := picklist("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
	leadSources := picklist("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
	fields := []Field{
		idField("Contact ID"),
		isDeleted(),
		ref("MasterRecordId", "Master Record ID", "Contact", "MasterRecord", false),
		ref("AccountId", "Account ID", "Account", "Account", true),
		{Name: "LastName", Label: "Last Name", Type: "string", Length: 80, Createable: true, Updateable: true, CompoundFieldName: "Name", CompoundMember: "LastName"},
		{Name: "FirstName", Label: "First Name", Type: "string", Length: 40, Nillable: true, Createable: true, Updateable: true, CompoundFieldName: "Name", CompoundMember: "FirstName"},
		{Name: "Salutation", Label: "Salutation", Type: "picklist", Length: 40, Nillable: true, Createable: true, Updateable: true, CompoundFieldName: "Name", CompoundMember: "Salutation", PicklistValues: salutations},
		{Name: "Name", Label: "Full Name", Type: "string", Length: 121, NameField: true},
		text("MailingStreet", "Mailing Street", "textarea", 255, "MailingAddress", "Street"),
		text("MailingCity", "Mailing City", "string", 40, "MailingAddress", "City"),
		text("MailingState", "Mailing State/Province", "string", 80, "MailingAddress", "State"),
		text("MailingPostalCode", "Mailing Zip/Postal Code", "string", 20, "MailingAddress", "PostalCode"),
		text("MailingCountry", "Mailing Country", "string", 80, "MailingAddress", "Country"),
		{Name: "MailingAddress", Label: "Mailing Address", Type: "address", Nillable: true},
		text("Phone", "Business Phone", "phone", 40, "", ""),
		text("Fax", "Business Fax", "phone", 40, "", ""),
		text("MobilePhone", "Mobile Phone", "phone", 40, "", ""),
		text("AssistantPhone", "Asst. Phone", "phone", 40, "", ""),
		ref("ReportsToId", "Reports To ID", "Contact", "ReportsTo", true),
		{Name: "Email", Label: "Email", Type: "email", Length: 80, Nillable: true, Createable: true, Updateable: true, IDLookup: true},
		text("Title", "Title", "string", 128, "", ""),
		text("Department", "Department", "string", 80, "", ""),
		text("AssistantName", "Assistant's Name", "string", 40, "", ""),
		{Name: "LeadSource", Label: "Lead Source", Type: "picklist", Length: 255, Nillable: true, Createable: true, Updateable: true, PicklistValues: leadSources},
		{Name: "Birthdate", Label: "Birthdate", Type: "date", Nillable: true, Createable: true, Updateable: true},
		text("Description", "Contact Description", "textarea", 32000, "", ""),
		ownerID(),
		createdDate(), ref("CreatedById", "Created By ID", "User", "CreatedBy", false),
		lastModifiedDate(), ref("LastModifiedById", "Last Modified By ID", "User", "LastModifiedBy", false),
		systemModstamp(),
	}
	return finish(&Object{Name: "Contact", Label: "Contact", LabelPlural: "Contacts", KeyPrefix: "003", Fields: fields})
}

// Account returns the standard Account object (key prefix 001), its fields as a real org describes them.
func Account() *Object {
	fields := []Field{
		idField("Account ID"),
		isDeleted(),
		ref("MasterRecordId", "Master Record ID", "Account", "MasterRecord", false),
		{Name: "Name", Label: "Account Name", Type: "string", Length: 255, Createable: true, Updateable: true, NameField: true},
		{Name: "Type", Label: "Account Type", Type: "picklist", Length: 255, Nillable: true, Createable: true, Updateable: true, PicklistValues: picklist("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")},
		ref("ParentId", "Parent Account ID", "Account", "Parent", true),
		text("BillingStreet", "Billing Street", "textarea", 255, "BillingAddress", "Street"),
		text("BillingCity", "Billing City", "string", 40, "BillingAddress", "City"),
		text("BillingState", "Billing State/Province", "string", 80, "BillingAddress", "State"),
		text("BillingPostalCode", "Billing Zip/Postal Code", "string", 20, "BillingAddress", "PostalCode"),
		text("BillingCountry", "Billing Country", "string", 80, "BillingAddress", "Country"),
		{Name: "BillingAddress", Label: "Billing Address", Type: "address", Nillable: true},
		text("Phone", "Account Phone", "phone", 40, "", ""),
		text("Fax", "Account Fax", "phone", 40, "", ""),
		text("AccountNumber", "Account Number", "string", 40, "", ""),
		{Name: "Website", Label: "Website", Type: "url", Length: 255, Nillable: true, Createable: true, Updateable: true},
		text("Sic", "SIC Code", "string", 20, "", ""),
		{Name: "Industry", Label: "Industry", Type: "picklist", Length: 255, Nillable: true, Createable: true, Updateable: true, PicklistValues: picklist("Banking", "Consulting", "Education", "Manufacturing", "Retail", "Technology")},
		{Name: "AnnualRevenue", Label: "Annual Revenue", Type: "currency", Precision: 18, Nillable: true, Createable: true, Updateable: true},
		{Name: "NumberOfEmployees", Label: "Employees", Type: "int", Digits: 8, Nillable: true, Createable: true, Updateable: true},
		text("TickerSymbol", "Ticker Symbol", "string", 20, "", ""),
		text("Description", "Account Description", "textarea", 32000, "", ""),
		ownerID(),
		createdDate(), ref("CreatedById", "Created By ID", "User", "CreatedBy", false),
		lastModifiedDate(), ref("LastModifiedById", "Last Modified By ID", "User", "LastModifiedBy", false),
		systemModstamp(),
	}
	return finish(&Object{Name: "Account", Label: "Account", LabelPlural: "Accounts", KeyPrefix: "001", Fields: fields})
}

func finish(o *Object) *Object {
	for i := range o.Fields {
		if o.Fields[i].ReferenceTo == nil {
			o.Fields[i].ReferenceTo = []string{}
		}
		if o.Fields[i].PicklistValues == nil {
			o.Fields[i].PicklistValues = []PicklistValue{}
		}
	}
	return o
}

func idField(label string) Field {
	return Field{Name: "Id", Label: label, Type: "id", Length: 18, DefaultedOnCreate: true, IDLookup: true}
}

func isDeleted() Field {
	return Field{Name: "IsDeleted", Label: "Deleted", Type: "boolean", DefaultedOnCreate: true, NotInChangeEvents: true}
}

func systemModstamp() Field {
	return Field{Name: "SystemModstamp", Label: "System Modstamp", Type: "datetime", DefaultedOnCreate: true, NotInChangeEvents: true}
}

func createdDate() Field {
	return Field{Name: "CreatedDate", Label: "Created Date", Type: "datetime", DefaultedOnCreate: true}
}

func lastModifiedDate() Field {
	return Field{Name: "LastModifiedDate", Label: "Last Modified Date", Type: "datetime", DefaultedOnCreate: true}
}

func ownerID() Field {
	return Field{Name: "OwnerId", Label: "Owner ID", Type: "reference", Length: 18, Createable: true, Updateable: true, DefaultedOnCreate: true, ReferenceTo: []string{"User"}, RelationshipName: "Owner"}
}

func ref(name, label, to, rel string, writable bool) Field {
	return Field{Name: name, Label: label, Type: "reference", Length: 18, Nillable: true, Createable: writable, Updateable: writable, ReferenceTo: []string{to}, RelationshipName: rel}
}

func text(name, label, typ string, length int, compound, member string) Field {
	return Field{Name: name, Label: label, Type: typ, Length: length, Nillable: true, Createable: true, Updateable: true, CompoundFieldName: compound, CompoundMember: member}
}

func picklist(values ...string) []PicklistValue {
	out := make([]PicklistValue, len(values))
	for i, v := range values {
		out[i] = PicklistValue{Active: true, Label: v, Value: v}
	}
	return out
}
