package plan

import (
	"fmt"
	"strconv"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/units"
)

// Role names as the inventory resolves them.
const (
	RoleCoordinator = "coordinator"
	RoleBroker      = "broker"
)

// Service is what a role installs on a node.
type Service struct {
	Role     string
	Unit     string // drover-broker.service
	User     string // dedicated system user
	Binary   string // stable symlink the unit runs
	Config   string
	Env      string
	DataDir  string
	IDFile   string // where the node's id is recorded, inside the data dir
	IDName   string // "myid" or "broker.id", for messages
	StopSecs int
}

// Services describes both roles.
var Services = map[string]Service{
	RoleCoordinator: {Role: RoleCoordinator, Unit: "drover-coordinator.service", User: "drover-coordinator",
		Binary: protocol.BinDir + "/drover-coordinator", Config: ZooCfg, Env: CoordinatorEnv,
		DataDir: CoordinatorData, IDFile: CoordinatorData + "/myid", IDName: "myid", StopSecs: 60},
	RoleBroker: {Role: RoleBroker, Unit: "drover-broker.service", User: "drover-broker",
		Binary: protocol.BinDir + "/drover-broker", Config: ServerProperties, Env: BrokerEnv,
		DataDir: BrokerData, IDFile: BrokerData + "/broker.id", IDName: "broker.id", StopSecs: 120},
}

// Owned is every path a drover plan may write on a node; the agent refuses anything else.
var Owned = []string{"/etc/drover", "/var/lib/drover", "/opt/drover",
	"/etc/systemd/system/drover-coordinator.service", "/etc/systemd/system/drover-broker.service"}

// Task ids the controller looks at after an apply: a change in any of RestartTriggers on a node
// whose service was already running means that node needs a (rolling) restart.
const (
	TaskArtifact = "artifact"
	TaskConfig   = "config"
	TaskEnv      = "environment"
	TaskUnit     = "unit"
	TaskService  = "service"
)

// RestartTriggers are the tasks whose change requires the service to restart.
var RestartTriggers = []string{TaskArtifact, TaskConfig, TaskEnv, TaskUnit}

// Tasks renders the whole task list that converges one node of role to the inventory. binarySHA is
// the content hash of the role's binary, already pushed to the node's store.
func Tasks(c Cluster, self Node, role, binarySHA string) ([]protocol.Task, error) {
	svc, ok := Services[role]
	if !ok {
		return nil, fmt.Errorf("%s: unknown role %q", self.Host, role)
	}
	var config string
	var err error
	switch role {
	case RoleCoordinator:
		config, err = CoordinatorConfig(c, self)
	case RoleBroker:
		config, err = BrokerConfig(c, self)
	}
	if err != nil {
		return nil, err
	}
	env, heap, err := Environment(self)
	if err != nil {
		return nil, err
	}
	ud := units.Data{
		Description:     "drover " + role + " (" + self.Host + ")",
		User:            svc.User,
		Binary:          svc.Binary,
		Config:          svc.Config,
		EnvironmentFile: svc.Env,
		ReadWritePaths:  []string{svc.DataDir},
		TimeoutStopSec:  svc.StopSecs,
		LimitNOFILE:     1048576,
	}
	if heap != nil {
		ud.MemoryHigh, ud.MemoryMax = heap.MemoryHigh(), heap.MemoryMax()
	}
	unit, err := units.Render(svc.Unit, ud)
	if err != nil {
		return nil, err
	}
	enabled := true
	tasks := []protocol.Task{
		protocol.NewTask("group", protocol.GroupParams{Name: svc.User}),
		protocol.NewTask("user", protocol.UserParams{Name: svc.User, Group: svc.User, Home: svc.DataDir}),
		protocol.NewTask("etc", protocol.DirectoryParams{Path: EtcDir, Mode: "0755", Owner: "root", Group: "root"}),
		protocol.NewTask("varlib", protocol.DirectoryParams{Path: "/var/lib/drover", Mode: "0755", Owner: "root", Group: "root"}),
		protocol.NewTask("datadir", protocol.DirectoryParams{Path: svc.DataDir, Mode: "0750", Owner: svc.User, Group: svc.User}),
	}
	if role == RoleBroker {
		tasks = append(tasks, protocol.NewTask("logdirs", protocol.DirectoryParams{Path: BrokerLogs, Mode: "0750", Owner: svc.User, Group: svc.User}))
	}
	tasks = append(tasks,
		protocol.NewTask("id", protocol.IdentityParams{Path: svc.IDFile, Value: strconv.Itoa(self.ID), Name: svc.IDName,
			DataDir: svc.DataDir, Owner: svc.User, Group: svc.User}),
		protocol.NewTask(TaskArtifact, protocol.ArtifactParams{SHA256: binarySHA, Link: svc.Binary}),
		protocol.NewTask(TaskConfig, protocol.FileParams{Path: svc.Config, Content: config, Mode: "0640", Owner: "root", Group: svc.User}),
		protocol.NewTask(TaskEnv, protocol.FileParams{Path: svc.Env, Content: env, Mode: "0640", Owner: "root", Group: svc.User}),
		protocol.NewTask(TaskUnit, protocol.UnitParams{Name: svc.Unit, Content: unit}),
		// started, never restarted here: a running service whose inputs changed is restarted by
		// the controller through the rolling path, one node at a time.
		protocol.NewTask(TaskService, protocol.ServiceParams{Name: svc.Unit, State: protocol.StateStarted, Enabled: &enabled, Timeout: "5m"}),
	)
	return tasks, nil
}
