// Command terraform-provider-crmsync serves the crmsync Terraform provider over plugin protocol 6.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/crmsync/terraform-provider-crmsync/internal/provider"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// Generate the provider documentation with tfplugindocs (make docs).
//go:generate go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs@v0.24.0 generate --provider-name crmsync

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version.Version), providerserver.ServeOpts{
		Address: "registry.terraform.io/crmsync/crmsync",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
