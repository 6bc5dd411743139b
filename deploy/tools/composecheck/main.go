// composecheck loads a Compose file the way `docker compose config` does, with the Compose
// Specification's reference library (github.com/compose-spec/compose-go/v2): JSON-schema
// validation against the spec's schema, interpolation, normalization, and the project-level
// consistency check (services, volumes, networks, secrets and configs that are referred to are
// defined; depends_on names real services). It prints the resolved project on success.
//
// Usage: composecheck [-profile NAME]... COMPOSE_FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type profiles []string

func (p *profiles) String() string     { return strings.Join(*p, ",") }
func (p *profiles) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	var active profiles
	flag.Var(&active, "profile", "profile to enable (repeatable)")
	quiet := flag.Bool("quiet", false, "print nothing on success")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-profile NAME]... COMPOSE_FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(flag.Args(),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithProfiles(active),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	if !*quiet {
		os.Stdout.Write(out)
	}
	fmt.Fprintf(os.Stderr, "composecheck: %s valid (profiles %q, services %s)\n",
		flag.Arg(0), active.String(), strings.Join(project.ServiceNames(), ","))
}
