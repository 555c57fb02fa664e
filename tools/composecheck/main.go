// Command composecheck loads docker-compose files the way Docker Compose does (compose-spec schema
// validation, interpolation, merging of override files) and prints the resolved project as JSON,
// so the tests can check it without a Docker engine.
//
//	composecheck -f docker-compose.yml [-f docker-compose.gpu.yml]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var paths files
	flag.Var(&paths, "f", "compose file (repeatable; later files override earlier ones)")
	flag.Parse()
	if len(paths) == 0 {
		fmt.Fprintln(os.Stderr, "composecheck: at least one -f FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		paths,
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithResolvedPaths(false),
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
	encoded, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	fmt.Println(string(encoded))
}
