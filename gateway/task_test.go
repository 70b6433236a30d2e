package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRegistrationValidateTasks(t *testing.T) {
	t.Parallel()

	withTasks := func() *Registration {
		r := validRegistration()
		r.Tasks = []TaskDeclaration{{Name: "sweep", Kind: TaskEvery, Spec: "1m0s"}, {Name: "report", Kind: TaskCron, Spec: "CRON_TZ=UTC 0 3 * * *"}}
		return r
	}
	if err := withTasks().Validate(); err != nil {
		t.Fatalf("valid tasks: %v", err)
	}
	for name, mutate := range map[string]func(*Registration){
		"bad name":   func(r *Registration) { r.Tasks[0].Name = "a.b" },
		"empty name": func(r *Registration) { r.Tasks[0].Name = "" },
		"bad kind":   func(r *Registration) { r.Tasks[0].Kind = "hourly" },
		"no spec":    func(r *Registration) { r.Tasks[0].Spec = "" },
		"long spec":  func(r *Registration) { r.Tasks[0].Spec = strings.Repeat("*", MaxTaskSpecLen+1) },
		"twice":      func(r *Registration) { r.Tasks = append(r.Tasks, r.Tasks[0]) },
		"too many": func(r *Registration) {
			for i := range MaxRegistrationTasks {
				r.Tasks = append(r.Tasks, TaskDeclaration{Name: fmt.Sprintf("t%d", i), Kind: TaskEvery, Spec: "1s"})
			}
		},
	} {
		r := withTasks()
		mutate(r)
		if err := r.Validate(); ErrorCode(err) != EInvalid {
			t.Errorf("%s: got %v, want invalid", name, err)
		}
	}
}

func TestTaskRunValidate(t *testing.T) {
	t.Parallel()

	valid := func() *TaskRun {
		return &TaskRun{Service: "jobs", Task: "sweep", WorkerID: "w1", Tick: time.Now(), DurationMS: 12, Error: "boom"}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid run: %v", err)
	}
	for name, mutate := range map[string]func(*TaskRun){
		"bad service":       func(r *TaskRun) { r.Service = "a b" },
		"bad task":          func(r *TaskRun) { r.Task = "a-b" },
		"bad worker":        func(r *TaskRun) { r.WorkerID = "" },
		"no tick":           func(r *TaskRun) { r.Tick = time.Time{} },
		"negative duration": func(r *TaskRun) { r.DurationMS = -1 },
		"huge duration":     func(r *TaskRun) { r.DurationMS = MaxTaskDuration.Milliseconds() + 1 },
		"long error":        func(r *TaskRun) { r.Error = strings.Repeat("e", MaxTaskErrorLen+1) },
	} {
		r := valid()
		mutate(r)
		if err := r.Validate(); ErrorCode(err) != EInvalid {
			t.Errorf("%s: got %v, want invalid", name, err)
		}
	}
}
