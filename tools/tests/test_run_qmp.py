"""tools/run --qmp PATH: the QEMU arguments it becomes."""
import contextlib
import importlib.machinery
import importlib.util
import io
import os
import unittest

_path = os.path.join(os.path.dirname(__file__), "..", "run")
_loader = importlib.machinery.SourceFileLoader("cohort_run", _path)
_spec = importlib.util.spec_from_loader("cohort_run", _loader)
run = importlib.util.module_from_spec(_spec)
_loader.exec_module(run)


class RunQmpOption(unittest.TestCase):
    def command(self, argv):
        args, parser = run.parse_args(argv)
        run.check_args(args, parser)
        return run.qemu_command(args, "/k.elf", "/tmp", False)

    def test_qmp_socket_argument(self):
        cmd = self.command(["--smp", "2,maxcpus=8", "--qmp", "/tmp/q.sock"])
        i = cmd.index("-qmp")
        self.assertEqual(cmd[i + 1], "unix:/tmp/q.sock,server=on,wait=off")
        self.assertEqual(cmd[cmd.index("-smp") + 1], "2,maxcpus=8")
        # The serial console stays where it was.
        self.assertEqual(cmd[cmd.index("-serial") + 1], "stdio")

    def test_commas_in_the_path_are_escaped(self):
        self.assertEqual(run.qmp_args("/tmp/a,b"), ["-qmp", "unix:/tmp/a,,b,server=on,wait=off"])

    def test_no_qmp_by_default_and_not_with_bochs(self):
        self.assertNotIn("-qmp", self.command([]))
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit):
                self.command(["--emulator", "bochs", "--qmp", "/tmp/q.sock"])


if __name__ == "__main__":
    unittest.main()
