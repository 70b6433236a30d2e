package main

import (
	"errors"
	"path/filepath"

	"github.com/spf13/cobra"
)

// buildCmd is `lightbus build`: the worker binary for production.
func (c *cli) buildCmd() *cobra.Command {
	var (
		module string
		output string
		opts   buildOptions
	)
	cmd := &cobra.Command{
		Use:   "build [--module PATH] -o FILE",
		Short: "Build the service's worker into a binary",
		Long: `build compiles the worker process of the service's bus package into FILE, the
binary to deploy. It is what "lightbus run" runs, built with -trimpath.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return errors.New("build: missing -o FILE")
			}
			dir, err := c.workDir()
			if err != nil {
				return err
			}
			if !filepath.IsAbs(output) {
				output = filepath.Join(dir, output)
			}
			t, err := c.builder.resolve(cmd.Context(), dir, c.busModule(module))
			if err != nil {
				return err
			}
			c.progress("building worker for %s...\n", t.Pkg.ImportPath)
			return c.builder.build(cmd.Context(), t, opts, []string{"-trimpath"}, output)
		},
	}
	f := cmd.Flags()
	f.StringVar(&module, "module", "", "the bus package: a directory or an import path ($LIGHTBUS_MODULE, default ./bus)")
	f.StringVarP(&output, "output", "o", "", "write the binary to `FILE`")
	f.StringVar(&opts.Tags, "tags", "", "build tags, as go build -tags")
	f.BoolVar(&opts.Race, "race", false, "enable the race detector")
	return cmd
}
