package main

import (
	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/buildinfo"
)

// versionCmd is `lightbus version`: the CLI's build and the gateway's.
func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this command and of the gateway",
		Long: `version prints this command's version, source revision and Go release, then the
gateway's (GET /v1/version, which any valid API key may ask). When the gateway
cannot answer, it prints this command's version and the error, and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := buildinfo.Read()
			var gw *lightbus.GatewayVersion
			bus, err := c.bus()
			if err == nil {
				gw, err = bus.GatewayVersion(cmd.Context())
			}
			if c.jsonOut {
				out := struct {
					Client  buildinfo.Info           `json:"client"`
					Gateway *lightbus.GatewayVersion `json:"gateway"`
					Error   string                   `json:"error,omitempty"`
				}{Client: client, Gateway: gw}
				if err != nil {
					out.Error = errorLine(err)
				}
				if perr := c.printJSON(out); perr != nil {
					return perr
				}
				return err
			}
			w := c.table()
			row(w, "", "VERSION", "REVISION", "GO")
			row(w, "client", client.Version, orDash(client.Revision), client.Go)
			if gw != nil {
				row(w, "gateway", gw.Version, orDash(gw.Revision), gw.Go)
			}
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
			return err
		},
	}
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
