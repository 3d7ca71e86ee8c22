"""tools/qmp: the step parser, the logic on QMP replies and the client against a fake QMP
server (no QEMU needed)."""
import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import socket
import tempfile
import threading
import unittest


def _load(name, file):
    path = os.path.join(os.path.dirname(__file__), "..", file)
    loader = importlib.machinery.SourceFileLoader(name, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    loader.exec_module(module)
    return module


qmp = _load("cohort_qmp", "qmp")


def steps(*words):
    return [(s.cmd, s.args) for s in qmp.parse_argv_steps(list(words))]


# query-hotpluggable-cpus of -smp 2,maxcpus=4 as QEMU 7.2 answers it (highest slot first).
HOTPLUGGABLE = [
    {"props": {"core-id": 3, "thread-id": 0, "socket-id": 0}, "vcpus-count": 1,
     "type": "max-x86_64-cpu"},
    {"props": {"core-id": 2, "thread-id": 0, "socket-id": 0}, "vcpus-count": 1,
     "type": "max-x86_64-cpu"},
    {"props": {"core-id": 1, "thread-id": 0, "socket-id": 0}, "vcpus-count": 1,
     "qom-path": "/machine/unattached/device[2]", "type": "max-x86_64-cpu"},
    {"props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "vcpus-count": 1,
     "qom-path": "/machine/unattached/device[0]", "type": "max-x86_64-cpu"},
]

CPUS = [
    {"cpu-index": 0, "qom-path": "/machine/unattached/device[0]", "thread-id": 100,
     "props": {"core-id": 0, "thread-id": 0, "socket-id": 0}, "target": "x86_64"},
    {"cpu-index": 1, "qom-path": "/machine/unattached/device[2]", "thread-id": 101,
     "props": {"core-id": 1, "thread-id": 0, "socket-id": 0}, "target": "x86_64"},
    {"cpu-index": 3, "qom-path": "/machine/peripheral/cpu-0-3-0", "thread-id": 102,
     "props": {"core-id": 3, "thread-id": 0, "socket-id": 0}, "target": "x86_64"},
]


class CommandLineSteps(unittest.TestCase):
    def test_a_whole_session(self):
        self.assertEqual(
            steps("add", "2", "wait-cpus", "4", "10", "query", "del", "cpu-0-3-0",
                  "sleep", "0.5", "wait-event", "DEVICE_DELETED", "quit"),
            [("add", ["2"]), ("wait-cpus", ["4", "10"]), ("query", []),
             ("del", ["cpu-0-3-0"]), ("sleep", ["0.5"]), ("wait-event", ["DEVICE_DELETED"]),
             ("quit", [])])

    def test_optional_arguments_stop_at_the_next_step(self):
        self.assertEqual(steps("add", "query"), [("add", []), ("query", [])])
        self.assertEqual(steps("wait-cpus", "3", "add"), [("wait-cpus", ["3"]), ("add", [])])

    def test_required_arguments_are_taken_whatever_they_look_like(self):
        self.assertEqual(steps("wait-serial", "query", "5", "quit"),
                         [("wait-serial", ["query", "5"]), ("quit", [])])
        self.assertEqual(steps("hmp", "info cpus"), [("hmp", ["info cpus"])])

    def test_slots(self):
        self.assertEqual(steps("add", "socket=0,core=3,thread=0", "del", "socket=0,core=3"),
                         [("add", ["socket=0,core=3,thread=0"]), ("del", ["socket=0,core=3"])])

    def test_errors_name_the_argument(self):
        cases = [
            (["frobnicate"], "argument 1 .*not a step"),
            (["add", "2", "wait-cpus"], "argument 3 .*needs 1"),
            (["add", "0"], "below 1"),
            (["add", "two"], "not an integer"),
            (["wait-cpus", "3", "soon"], "timeout: 'soon' is not a number"),
            (["wait-cpus", "x"], "not an integer"),
            (["sleep", "-1"], "below 0"),
            (["wait-serial", "("], "bad regular expression"),
            (["add", "socket=0,kore=1"], "'kore=1'"),
            (["add", "core=1,core=2"], "given twice"),
            (["del"], "needs 1"),
        ]
        for words, pattern in cases:
            with self.subTest(words=words):
                with self.assertRaisesRegex(qmp.ScriptError, pattern):
                    qmp.parse_argv_steps(words)


class ScriptFiles(unittest.TestCase):
    def test_lines_comments_and_quotes(self):
        got = qmp.parse_script(
            "# hot-add two CPUs\n"
            "add 2   # next free slots\n"
            "\n"
            "wait-serial 'CPU 2 online' 20\n"
            "del 3\n"
            "wait-event DEVICE_DELETED=cpu-0-3-0 5\n")
        self.assertEqual([(s.cmd, s.args) for s in got],
                         [("add", ["2"]), ("wait-serial", ["CPU 2 online", "20"]),
                          ("del", ["3"]), ("wait-event", ["DEVICE_DELETED=cpu-0-3-0", "5"])])
        self.assertEqual(got[1].where, "script line 4")

    def test_one_step_a_line(self):
        with self.assertRaisesRegex(qmp.ScriptError, "line 1: add takes 0 to 1 argument"):
            qmp.parse_script("add 2 query")
        with self.assertRaisesRegex(qmp.ScriptError, "line 2: 'bogus' is not a step"):
            qmp.parse_script("query\nbogus 1\n")
        with self.assertRaisesRegex(qmp.ScriptError, "line 1: No closing quotation"):
            qmp.parse_script("wait-serial 'oops")


class Slots(unittest.TestCase):
    def test_parse_slot_takes_short_and_qmp_names(self):
        self.assertEqual(qmp.parse_slot("socket=1,core=2,thread=0"),
                         {"socket-id": 1, "core-id": 2, "thread-id": 0})
        self.assertEqual(qmp.parse_slot("socket-id=1, die=0"), {"socket-id": 1, "die-id": 0})

    def test_free_slots_in_topology_order(self):
        free = qmp.pick_slots(HOTPLUGGABLE, 2)
        self.assertEqual([s["props"]["core-id"] for s in free], [2, 3])
        with self.assertRaisesRegex(qmp.StepFailed, "3 CPU.* only 2 of 4 slots are free"):
            qmp.pick_slots(HOTPLUGGABLE, 3)

    def test_find_slot(self):
        self.assertEqual(qmp.find_slot(HOTPLUGGABLE, {"core-id": 2})["props"]["core-id"], 2)
        with self.assertRaisesRegex(qmp.StepFailed, "no hotpluggable slot has core-id=9"):
            qmp.find_slot(HOTPLUGGABLE, {"core-id": 9})
        with self.assertRaisesRegex(qmp.StepFailed, "matches 4 slots"):
            qmp.find_slot(HOTPLUGGABLE, {"socket-id": 0})

    def test_device_add_arguments_and_ids(self):
        self.assertEqual(qmp.device_add_args(HOTPLUGGABLE[1]),
                         {"driver": "max-x86_64-cpu", "id": "cpu-0-2-0", "socket-id": 0,
                          "core-id": 2, "thread-id": 0})
        self.assertEqual(qmp.cpu_id({"socket-id": 1, "die-id": 0, "core-id": 3,
                                     "thread-id": 1, "node-id": 1}), "cpu-1-0-3-1")
        args = qmp.device_add_args({"type": "t", "props": {"socket-id": 1, "core-id": 0,
                                                           "thread-id": 0, "node-id": 1}})
        self.assertEqual(args["node-id"], 1)


class DelTargets(unittest.TestCase):
    def test_an_id_is_passed_as_it_is(self):
        self.assertEqual(qmp.resolve_del_target("cpu-0-3-0", CPUS, HOTPLUGGABLE)[0],
                         "cpu-0-3-0")

    def test_a_cpu_index_becomes_the_id_or_qom_path(self):
        self.assertEqual(qmp.resolve_del_target("3", CPUS, HOTPLUGGABLE)[0], "cpu-0-3-0")
        self.assertEqual(qmp.resolve_del_target("1", CPUS, HOTPLUGGABLE)[0],
                         "/machine/unattached/device[2]")
        with self.assertRaisesRegex(qmp.StepFailed, "no CPU with index 7; present: 0, 1, 3"):
            qmp.resolve_del_target("7", CPUS, HOTPLUGGABLE)

    def test_a_slot(self):
        self.assertEqual(qmp.resolve_del_target("core=1", CPUS, HOTPLUGGABLE)[0],
                         "/machine/unattached/device[2]")
        with self.assertRaisesRegex(qmp.StepFailed, "is empty"):
            qmp.resolve_del_target("core=2", CPUS, HOTPLUGGABLE)


class Formatting(unittest.TestCase):
    def test_query_line(self):
        self.assertEqual(qmp.format_cpus(CPUS), "3 CPUs: 0=s0c0t0 1=s0c1t0 3=s0c3t0(cpu-0-3-0)")
        self.assertEqual(qmp.format_cpus(CPUS[:1]), "1 CPU: 0=s0c0t0")

    def test_event_matching(self):
        lapic = {"event": "DEVICE_DELETED",
                 "data": {"path": "/machine/peripheral/cpu-0-3-0/lapic"}}
        cpu = {"event": "DEVICE_DELETED",
               "data": {"device": "cpu-0-3-0", "path": "/machine/peripheral/cpu-0-3-0"}}
        ost = {"event": "ACPI_DEVICE_OST", "data": {"info": {"device": "cpu-0-3-0",
                                                             "slot": "3", "status": 0}}}
        self.assertTrue(qmp.event_matches(lapic, "DEVICE_DELETED"))
        self.assertFalse(qmp.event_matches(lapic, "DEVICE_DELETED=cpu-0-3-0"))
        self.assertTrue(qmp.event_matches(cpu, "DEVICE_DELETED=cpu-0-3-0"))
        self.assertTrue(qmp.event_matches(ost, "ACPI_DEVICE_OST=cpu-0-3-0"))
        self.assertFalse(qmp.event_matches(ost, "DEVICE_DELETED"))


class FakeQemu:
    """A QMP server on a Unix socket that answers from a table, for the client and Runner."""

    def __init__(self, path, answers):
        self.path, self.answers, self.seen = path, answers, []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.server.accept()
        f = conn.makefile("rwb")
        f.write(b'{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, '
                b'"capabilities": []}}\r\n')
        f.flush()
        for line in f:
            req = json.loads(line)
            self.seen.append(req)
            answer = self.answers.get(req["execute"], {})
            if callable(answer):
                answer = answer(req.get("arguments", {}))
            for ev in answer.get("events", []):
                f.write(json.dumps(ev).encode() + b"\r\n")
            reply = {k: v for k, v in answer.items() if k != "events"}
            if "error" not in reply:
                reply.setdefault("return", {})
            reply["id"] = req["id"]
            f.write(json.dumps(reply).encode() + b"\r\n")
            f.flush()
            if req["execute"] == "quit":
                break
        conn.close()


class AgainstAFakeQemu(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.tmp.name, "q.sock")

    def tearDown(self):
        self.tmp.cleanup()

    def run_tool(self, answers, *argv):
        fake = FakeQemu(self.sock, answers)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = qmp.main([self.sock] + list(argv))
        return status, out.getvalue(), err.getvalue(), fake.seen

    def test_add_gives_the_next_free_slot_a_stable_id(self):
        status, out, _, seen = self.run_tool(
            {"query-hotpluggable-cpus": {"return": HOTPLUGGABLE},
             "query-cpus-fast": {"return": CPUS}},
            "add", "wait-cpus", "3", "quit")
        self.assertEqual(status, 0)
        self.assertEqual([r["execute"] for r in seen],
                         ["qmp_capabilities", "query-hotpluggable-cpus", "device_add",
                          "query-cpus-fast", "quit"])
        self.assertEqual(seen[2]["arguments"], {"driver": "max-x86_64-cpu", "id": "cpu-0-2-0",
                                                "socket-id": 0, "core-id": 2, "thread-id": 0})
        self.assertIn("device_add max-x86_64-cpu id=cpu-0-2-0 (socket 0, core 2, thread 0): ok",
                      out)
        self.assertIn("3 CPUs: 0=s0c0t0 1=s0c1t0 3=s0c3t0(cpu-0-3-0)", out)

    def test_a_qmp_error_stops_the_script_with_status_1(self):
        status, _, err, seen = self.run_tool(
            {"query-cpus-fast": {"return": CPUS},
             "query-hotpluggable-cpus": {"return": HOTPLUGGABLE},
             "device_del": {"error": {"class": "GenericError",
                                      "desc": "Boot CPU is unpluggable"}}},
            "del", "0", "query")
        self.assertEqual(status, 1)
        self.assertIn("FAILED at [1] del 0: device_del: GenericError: Boot CPU is unpluggable",
                      err)
        self.assertEqual(seen[-1]["execute"], "device_del")
        self.assertEqual(seen[-1]["arguments"], {"id": "/machine/unattached/device[0]"})

    def test_wait_cpus_times_out_with_124(self):
        status, _, err, _ = self.run_tool({"query-cpus-fast": {"return": CPUS}},
                                          "wait-cpus", "4", "0.3")
        self.assertEqual(status, 124)
        self.assertIn("3 CPUs present, not 4, after 0.3 s", err)

    def test_events_are_printed_and_waited_for(self):
        deleted = {"event": "DEVICE_DELETED", "data": {"device": "cpu-0-3-0",
                                                       "path": "/machine/peripheral/cpu-0-3-0"}}
        status, out, _, _ = self.run_tool(
            {"query-cpus-fast": {"return": CPUS},
             "query-hotpluggable-cpus": {"return": HOTPLUGGABLE},
             "device_del": {"events": [deleted]}},
            "del", "3", "wait-event", "DEVICE_DELETED=cpu-0-3-0", "1")
        self.assertEqual(status, 0)
        self.assertIn('event DEVICE_DELETED {"device": "cpu-0-3-0"', out)
        self.assertIn("got event DEVICE_DELETED", out)


if __name__ == "__main__":
    unittest.main()
