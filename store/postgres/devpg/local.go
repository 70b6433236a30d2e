package devpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// errNoBinaries means no directory holds the PostgreSQL server binaries.
var errNoBinaries = errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")

// defaultGlobs are the installation directories searched after PATH.
var defaultGlobs = []string{
	"/usr/lib/postgresql/*/bin",          // Debian, Ubuntu
	"/usr/pgsql-*/bin",                   // RHEL, Fedora (PGDG packages)
	"/opt/homebrew/opt/postgresql@*/bin", // Homebrew on Apple silicon
	"/usr/local/opt/postgresql@*/bin",    // Homebrew on Intel
}

// logFileName is the server log, kept inside the data directory.
const logFileName = "lightbus-postgres.log"

// binaries is a directory holding initdb, pg_ctl and postgres.
type binaries struct {
	dir string
}

func (b binaries) path(name string) string {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(b.dir, name)
}

// account is the unprivileged user running the cluster when the caller is
// root.
type account struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

func (a *account) inGroup(gid uint32) bool {
	return a.gid == gid || slices.Contains(a.groups, gid)
}

// startLocal runs the cluster in opts.DataDir from local binaries. It returns
// an error wrapping errNoBinaries when there are none.
func startLocal(ctx context.Context, opts Options) (*Server, error) {
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devpg: data dir: %w", err)
	}
	initialised := fileExists(filepath.Join(dir, "PG_VERSION"))
	wantVersion := ""
	if initialised {
		v, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
		if err != nil {
			return nil, fmt.Errorf("devpg: %w", err)
		}
		wantVersion = strings.TrimSpace(string(v))
	}
	bins, err := findBinaries(ctx, opts.searchDirs(), wantVersion)
	if err != nil {
		return nil, err
	}

	acct, err := chooseAccount(dir, initialised)
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(dir, acct); err != nil {
		return nil, err
	}
	s := &Server{Method: MethodLocal, DataDir: dir, logger: opts.Logger}

	if initialised {
		if port, ok := runningPort(ctx, dir); ok {
			s.Reused = true
			return s, s.finishLocal(ctx, opts, bins, acct, port)
		}
	} else {
		opts.Logger.Info("initialising dev postgres cluster", "data_dir", dir, "bin_dir", bins.dir)
		_, err := run(ctx, acct, dir, bins.path("initdb"),
			"-D", dir, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C")
		if err != nil {
			return nil, fmt.Errorf("devpg: initdb %s: %w", dir, err)
		}
	}

	// The port is free when chosen but another process may take it before the
	// server binds it, so try a few.
	var startErr error
	for range 3 {
		port := opts.Port
		if port == 0 {
			port, err = freePort()
			if err != nil {
				return nil, fmt.Errorf("devpg: find a free port: %w", err)
			}
		}
		startErr = pgctlStart(ctx, bins, acct, dir, port, opts.Settings)
		if startErr == nil {
			s.stop = func(ctx context.Context) error { return pgctlStop(ctx, bins, acct, dir) }
			return s, s.finishLocal(ctx, opts, bins, acct, port)
		}
		if port, ok := runningPort(ctx, dir); ok { // started by someone else meanwhile
			s.Reused = true
			return s, s.finishLocal(ctx, opts, bins, acct, port)
		}
	}
	return nil, startErr
}

// finishLocal creates the database and fills in the URL.
func (s *Server) finishLocal(ctx context.Context, opts Options, bins binaries, acct *account, port int) error {
	if err := ensureDatabase(ctx, serverURL("127.0.0.1", port, "postgres"), opts.Database); err != nil {
		if s.stop != nil {
			_ = s.stop(context.WithoutCancel(ctx))
		}
		return err
	}
	s.URL = serverURL("127.0.0.1", port, opts.Database)
	user := "(current user)"
	if acct != nil {
		user = acct.name
	}
	opts.Logger.Info("dev postgres ready", "method", s.Method, "data_dir", s.DataDir, "url", s.URL,
		"reused", s.Reused, "bin_dir", bins.dir, "os_user", user)
	return nil
}

// searchDirs returns the directories searched for binaries, in order.
func (o *Options) searchDirs() []string {
	if o.BinDirs != nil {
		return o.BinDirs
	}
	pathList := o.pathList
	if pathList == "" {
		pathList = os.Getenv("PATH")
	}
	dirs := filepath.SplitList(pathList)
	globs := o.globs
	if globs == nil {
		globs = defaultGlobs
	}
	for _, g := range globs {
		matches, _ := filepath.Glob(g)
		slices.SortStableFunc(matches, func(a, b string) int {
			return slices.Compare(versionKey(b), versionKey(a)) // newest first
		})
		dirs = append(dirs, matches...)
	}
	return dirs
}

var digitsRE = regexp.MustCompile(`\d+`)

// versionKey returns the numbers in path, so that paths matched by one glob
// sort by the version they contain.
func versionKey(path string) []int {
	var key []int
	for _, d := range digitsRE.FindAllString(path, -1) {
		n, _ := strconv.Atoi(d)
		key = append(key, n)
	}
	return key
}

// findBinaries returns the first directory in dirs holding the server
// binaries. When want is not empty (the PG_VERSION of an existing cluster), the
// binaries' major version must match it.
func findBinaries(ctx context.Context, dirs []string, want string) (binaries, error) {
	var mismatched []string
	seen := map[string]bool{}
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		b, ok := binariesAt(d)
		if !ok || seen[b.dir] {
			continue
		}
		seen[b.dir] = true
		if want == "" {
			return b, nil
		}
		v, err := majorVersion(ctx, b)
		if err != nil {
			mismatched = append(mismatched, fmt.Sprintf("%s (%v)", b.dir, err))
			continue
		}
		if v == want {
			return b, nil
		}
		mismatched = append(mismatched, fmt.Sprintf("%s (version %s)", b.dir, v))
	}
	if len(mismatched) > 0 {
		return binaries{}, fmt.Errorf("devpg: the data directory holds a PostgreSQL %s cluster but no matching server binaries were found; found %s",
			want, strings.Join(mismatched, ", "))
	}
	return binaries{}, fmt.Errorf("%w in %s", errNoBinaries, describeDirs(dirs))
}

// describeDirs shortens the list of searched directories for messages.
func describeDirs(dirs []string) string {
	const max = 8
	if len(dirs) == 0 {
		return "no directories"
	}
	if len(dirs) > max {
		return strings.Join(dirs[:max], ", ") + fmt.Sprintf(" and %d more directories", len(dirs)-max)
	}
	return strings.Join(dirs, ", ")
}

// binariesAt reports whether dir holds the binaries, following a symlinked
// initdb (as in /usr/local/bin) back to its installation directory.
func binariesAt(dir string) (binaries, bool) {
	initdb := binaries{dir: dir}.path("initdb")
	if !isExecutable(initdb) {
		return binaries{}, false
	}
	candidates := []string{dir}
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		candidates = []string{filepath.Dir(real), dir}
	}
	for _, c := range candidates {
		b := binaries{dir: c}
		if isExecutable(b.path("initdb")) && isExecutable(b.path("pg_ctl")) && isExecutable(b.path("postgres")) {
			return b, true
		}
	}
	return binaries{}, false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && (runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// majorVersion returns the major version of the binaries, as PG_VERSION
// spells it ("15", or "9.6" before version 10).
func majorVersion(ctx context.Context, b binaries) (string, error) {
	out, err := exec.CommandContext(ctx, b.path("pg_ctl"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("pg_ctl --version: %w", err)
	}
	return parseMajorVersion(string(out))
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?`)

// parseMajorVersion parses the output of pg_ctl --version.
func parseMajorVersion(out string) (string, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unrecognised version %q", strings.TrimSpace(out))
	}
	if n, _ := strconv.Atoi(m[1]); n < 10 && m[2] != "" {
		return m[1] + "." + m[2], nil
	}
	return m[1], nil
}

// chooseAccount returns the user to run the cluster as: nil (the current
// user) unless the caller is root.
func chooseAccount(dir string, initialised bool) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	// Keep running an existing cluster as the user that owns it.
	if uid, gid, ok := fileOwner(dir); ok && initialised && uid != 0 {
		if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
			if a, err := accountOf(u); err == nil {
				return a, nil
			}
		}
		return &account{name: strconv.FormatUint(uint64(uid), 10), uid: uid, gid: gid}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		return accountOf(u)
	}
	return nil, errors.New("devpg: PostgreSQL cannot run as root and neither a postgres nor a nobody user exists; create a postgres system user or run as a non-root user")
}

func accountOf(u *user.User) (*account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("devpg: user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("devpg: user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	a := &account{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			a.groups = append(a.groups, uint32(g))
		}
	}
	return a, nil
}

// prepareDataDir creates dir and, when running as root, hands it to acct.
func prepareDataDir(dir string, acct *account) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("devpg: create data dir parent: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("devpg: create data dir: %w", err)
	}
	if acct == nil {
		return nil
	}
	if uid, _, ok := fileOwner(dir); !ok || uid != acct.uid {
		if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
			return fmt.Errorf("devpg: give data dir to user %s: %w", acct.name, err)
		}
	}
	return checkTraversable(dir, acct)
}

// runningPort reports the port of a server already running on dir: one whose
// postmaster.pid names a port where a server answers and reports dir as its
// data directory.
func runningPort(ctx context.Context, dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil || port <= 0 {
		return 0, false
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL("127.0.0.1", port, "postgres"))
	if err != nil {
		return 0, false
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var got string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&got); err != nil {
		return 0, false
	}
	return port, sameDir(got, dir)
}

func sameDir(a, b string) bool {
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	if errA != nil || errB != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return ra == rb
}

// freePort returns a loopback TCP port that is free right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// safeSetting matches the server setting names and values pgctlStart
// accepts.
var safeSetting = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)

// pgctlStart starts the cluster on port, listening on 127.0.0.1 only and
// without a unix socket (whose path length is limited to 107 bytes), with
// settings as extra server parameters.
func pgctlStart(ctx context.Context, bins binaries, acct *account, dir string, port int, settings map[string]string) error {
	logPath := filepath.Join(dir, logFileName)
	serverOpts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=''", port)
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		value := settings[name]
		// pg_ctl hands the options to a shell: allow nothing it would interpret.
		if !safeSetting.MatchString(name) || !safeSetting.MatchString(value) {
			return fmt.Errorf("devpg: server setting %q=%q: only letters, digits and \"_.:/-\" are allowed", name, value)
		}
		serverOpts += fmt.Sprintf(" -c %s=%s", name, value)
	}
	_, err := run(ctx, acct, dir, bins.path("pg_ctl"),
		"start", "-w", "-t", "60", "-D", dir, "-l", logPath, "-o", serverOpts)
	if err != nil {
		return fmt.Errorf("devpg: start postgres on port %d: %w; server log %s ends with: %s",
			port, err, logPath, logTail(logPath, 10))
	}
	return nil
}

// pgctlStop shuts the cluster down if it runs.
func pgctlStop(ctx context.Context, bins binaries, acct *account, dir string) error {
	if !fileExists(filepath.Join(dir, "postmaster.pid")) {
		return nil
	}
	if _, err := run(ctx, acct, dir, bins.path("pg_ctl"), "stop", "-D", dir, "-m", "fast", "-w", "-t", "60"); err != nil {
		return fmt.Errorf("devpg: stop postgres in %s: %w", dir, err)
	}
	return nil
}

// run runs a PostgreSQL program as acct (nil: the current user) in dir and
// returns its output; a failure's error includes the output.
func run(ctx context.Context, acct *account, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr(acct)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		what := filepath.Base(name)
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			what += " " + args[0]
		}
		return out, fmt.Errorf("%s: %w: %s", what, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// childEnv is the environment without PG* variables, which would otherwise
// change where the programs connect or which cluster they use.
func childEnv() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PG") })
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
