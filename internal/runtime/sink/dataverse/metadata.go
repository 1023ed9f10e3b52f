package dataverse

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// WhoAmIResponse is the WhoAmI function's answer.
type WhoAmIResponse struct {
	BusinessUnitID string `json:"BusinessUnitId"`
	UserID         string `json:"UserId"`
	OrganizationID string `json:"OrganizationId"`
}

// WhoAmI checks the credentials and returns the caller's identity (the application user).
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmIResponse, error) {
	var out WhoAmIResponse
	if err := c.getJSON(ctx, "whoami", "/WhoAmI", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) getJSON(ctx context.Context, kind, path string, out any) error {
	a, err := c.do(ctx, request{kind: kind, method: http.MethodGet, path: path, idempotent: true,
		header: http.Header{"If-None-Match": {"null"}}})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(a.Body, out); err != nil {
		return fmt.Errorf("dataverse GET %s: decoding the answer: %w", path, err)
	}
	return nil
}

type attributeMeta struct {
	LogicalName      string  `json:"LogicalName"`
	AttributeType    string  `json:"AttributeType"`
	IsValidForCreate bool    `json:"IsValidForCreate"`
	IsValidForUpdate bool    `json:"IsValidForUpdate"`
	AttributeOf      *string `json:"AttributeOf"`
	RequiredLevel    struct {
		Value string `json:"Value"`
	} `json:"RequiredLevel"`
	MaxLength *int     `json:"MaxLength"`
	Targets   []string `json:"Targets"`
	Format    *string  `json:"Format"`
}

// Table reads a table's definition and columns: base attribute metadata, then the String, Memo and Lookup
// casts for MaxLength and Targets. Shadow columns (AttributeOf set, e.g. parentcustomeridname) are left out.
func (c *Client) Table(ctx context.Context, logicalName string) (*mapping.DestSchema, error) {
	def := "/EntityDefinitions(LogicalName='" + strings.ReplaceAll(logicalName, "'", "''") + "')"
	var ent struct {
		LogicalName        string          `json:"LogicalName"`
		EntitySetName      string          `json:"EntitySetName"`
		PrimaryIDAttribute string          `json:"PrimaryIdAttribute"`
		Attributes         []attributeMeta `json:"Attributes"`
	}
	q := "?$select=LogicalName,EntitySetName,PrimaryIdAttribute&$expand=Attributes($select=LogicalName,AttributeType,IsValidForCreate,IsValidForUpdate,RequiredLevel,AttributeOf)"
	if err := c.getJSON(ctx, "metadata", def+q, &ent); err != nil {
		return nil, err
	}
	schema := &mapping.DestSchema{Table: ent.LogicalName, EntitySetName: ent.EntitySetName, PrimaryID: ent.PrimaryIDAttribute}
	index := map[string]int{}
	for _, a := range ent.Attributes {
		if a.AttributeOf != nil && *a.AttributeOf != "" {
			continue
		}
		index[a.LogicalName] = len(schema.Columns)
		schema.Columns = append(schema.Columns, mapping.DestColumn{
			LogicalName: a.LogicalName, AttributeType: a.AttributeType, RequiredLevel: a.RequiredLevel.Value,
			ValidForCreate: a.IsValidForCreate, ValidForUpdate: a.IsValidForUpdate,
		})
	}
	for _, cast := range []struct{ typ, sel string }{
		{"StringAttributeMetadata", "LogicalName,MaxLength"},
		{"MemoAttributeMetadata", "LogicalName,MaxLength"},
		{"LookupAttributeMetadata", "LogicalName,Targets"},
	} {
		var page struct {
			Value []attributeMeta `json:"value"`
		}
		if err := c.getJSON(ctx, "metadata", def+"/Attributes/Microsoft.Dynamics.CRM."+cast.typ+"?$select="+cast.sel, &page); err != nil {
			return nil, err
		}
		for _, a := range page.Value {
			i, ok := index[a.LogicalName]
			if !ok {
				continue
			}
			if a.MaxLength != nil {
				schema.Columns[i].MaxLength = *a.MaxLength
			}
			if a.Targets != nil {
				schema.Columns[i].Targets = a.Targets
			}
		}
	}
	return schema, nil
}

// RolePrivilege is one privilege a team holds through its roles.
type RolePrivilege struct {
	Depth          string `json:"Depth"`
	PrivilegeID    string `json:"PrivilegeId"`
	BusinessUnitID string `json:"BusinessUnitId"`
	PrivilegeName  string `json:"PrivilegeName"`
}

// TeamPrivileges calls RetrieveTeamPrivileges.
func (c *Client) TeamPrivileges(ctx context.Context, teamID string) ([]RolePrivilege, error) {
	return c.privileges(ctx, "/teams("+url.PathEscape(teamID)+")/Microsoft.Dynamics.CRM.RetrieveTeamPrivileges()")
}

// UserPrivileges calls RetrieveUserPrivileges: the privileges a systemuser holds through its security roles.
func (c *Client) UserPrivileges(ctx context.Context, userID string) ([]RolePrivilege, error) {
	return c.privileges(ctx, "/systemusers("+url.PathEscape(userID)+")/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()")
}

func (c *Client) privileges(ctx context.Context, path string) ([]RolePrivilege, error) {
	var out struct {
		RolePrivileges []RolePrivilege `json:"RolePrivileges"`
	}
	if err := c.getJSON(ctx, "metadata", path, &out); err != nil {
		return nil, err
	}
	return out.RolePrivileges, nil
}

// Team is a row of the teams table.
type Team struct {
	TeamID   string `json:"teamid"`
	Name     string `json:"name"`
	TeamType int    `json:"teamtype"`
}

// Team reads a team by ID.
func (c *Client) Team(ctx context.Context, teamID string) (*Team, error) {
	var t Team
	if err := c.getJSON(ctx, "read", "/teams("+url.PathEscape(teamID)+")?$select=teamid,name,teamtype", &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// SchemaName returns the schema name used in privilege names (prvCreateContact): the logical name with its
// first letter upper-cased, which holds for the standard tables.
func SchemaName(logicalName string) string {
	if logicalName == "" {
		return ""
	}
	return strings.ToUpper(logicalName[:1]) + logicalName[1:]
}
