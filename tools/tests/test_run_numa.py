"""tools/run --numa, --numa-cpus, --numa-mem, --numa-dist: the QEMU arguments they become."""
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


def plan(numa=None, cpus=None, mem=None, dist=None, max_cpus=8, total_mib=512, mem_given=None):
    return run.plan_numa(numa, cpus, mem, dist, max_cpus, total_mib, mem_given)


def qemu_args(argv):
    """The NUMA part of the QEMU command tools/run would build for these options."""
    args, parser = run.parse_args(argv)
    run.check_args(args, parser)
    return args


class EvenSplit(unittest.TestCase):
    def test_two_nodes_of_four_cpus(self):
        p = plan(numa=2, dist="10,21;21,10")
        self.assertEqual(run.numa_qemu_args(p), [
            "-object", "memory-backend-ram,id=numa-m0,size=256M",
            "-object", "memory-backend-ram,id=numa-m1,size=256M",
            "-numa", "node,nodeid=0,cpus=0-3,memdev=numa-m0",
            "-numa", "node,nodeid=1,cpus=4-7,memdev=numa-m1",
            "-numa", "dist,src=0,dst=1,val=21",
            "-numa", "dist,src=1,dst=0,val=21",
        ])

    def test_uneven_cpus_first_nodes_get_one_more_and_last_node_the_spare_mib(self):
        p = plan(numa=8, max_cpus=255, total_mib=1000)
        self.assertEqual(p.cpus[0], [(0, 31)])
        self.assertEqual(p.cpus[6], [(192, 223)])
        self.assertEqual(p.cpus[7], [(224, 254)])
        self.assertEqual(p.mem_mib, [125] * 8)
        p = plan(numa=3, max_cpus=4, total_mib=512)
        self.assertEqual(p.cpus, [[(0, 1)], [(2, 2)], [(3, 3)]])
        self.assertEqual(p.mem_mib, [170, 170, 172])

    def test_more_nodes_than_cpus_leaves_the_last_nodes_cpuless(self):
        p = plan(numa=4, max_cpus=2)
        self.assertEqual(p.cpus, [[(0, 0)], [(1, 1)], [], []])
        args = run.numa_qemu_args(p)
        self.assertIn("node,nodeid=3,memdev=numa-m3", args)

    def test_every_ordered_pair_gets_a_distance(self):
        p = plan(numa=4, max_cpus=16,
                 dist="10,20,30,40;20,10,20,30;30,20,10,20;40,30,20,10")
        dists = [a for a in run.numa_qemu_args(p) if a.startswith("dist,")]
        self.assertEqual(len(dists), 12)
        self.assertIn("dist,src=3,dst=0,val=40", dists)
        self.assertIn("dist,src=0,dst=3,val=40", dists)
        self.assertNotIn("dist,src=2,dst=2,val=10", dists)

    def test_asymmetric_matrix_is_passed_as_given(self):
        p = plan(numa=2, dist="10,21;31,10")
        dists = [a for a in run.numa_qemu_args(p) if a.startswith("dist,")]
        self.assertEqual(dists, ["dist,src=0,dst=1,val=21", "dist,src=1,dst=0,val=31"])

    def test_without_distances_there_is_no_dist_argument(self):
        self.assertFalse([a for a in run.numa_qemu_args(plan(numa=2)) if a.startswith("dist")])


class ExplicitNodes(unittest.TestCase):
    def test_memoryless_and_cpuless_nodes(self):
        p = plan(cpus="0-3;4-7;", mem="256M;0;256M")
        self.assertEqual(run.numa_qemu_args(p), [
            "-object", "memory-backend-ram,id=numa-m0,size=256M",
            "-object", "memory-backend-ram,id=numa-m2,size=256M",
            "-numa", "node,nodeid=0,cpus=0-3,memdev=numa-m0",
            "-numa", "node,nodeid=1,cpus=4-7",
            "-numa", "node,nodeid=2,memdev=numa-m2",
        ])

    def test_split_cpu_lists_become_several_cpus_keys(self):
        p = plan(cpus="0-1,4-5;2-3,6,7", mem="1G;1G", total_mib=2048)
        self.assertIn("node,nodeid=1,cpus=2-3,cpus=6,cpus=7,memdev=numa-m1",
                      run.numa_qemu_args(p))

    def test_sizes_set_the_total_when_mem_is_not_given(self):
        args = qemu_args(["--smp", "8", "--numa-cpus", "0-3;4-7", "--numa-mem", "1G;512M"])
        self.assertEqual(args.mem, "1536M")

    def test_sizes_must_add_up_to_an_explicit_mem(self):
        with self.assertRaisesRegex(run.NumaError, "adds up to 768 MiB"):
            plan(cpus="0-3;4-7", mem="512M;256M", mem_given="512M")

    def test_every_cpu_exactly_once(self):
        with self.assertRaisesRegex(run.NumaError, "CPU\\(s\\) 6-7 are in no node"):
            plan(cpus="0-3;4-5")
        with self.assertRaisesRegex(run.NumaError, "CPU 3 is in nodes 0 and 1"):
            plan(cpus="0-3;3-7")
        with self.assertRaisesRegex(run.NumaError, "CPU 8 .* does not exist"):
            plan(cpus="0-3;4-8")

    def test_maxcpus_counts_possible_cpus(self):
        self.assertEqual(run.smp_max_cpus("4,maxcpus=8"), 8)
        self.assertEqual(run.smp_max_cpus("64,sockets=4,cores=8,threads=2"), 64)
        self.assertEqual(run.smp_max_cpus("sockets=2,cores=3"), 6)
        p = plan(numa=2, max_cpus=run.smp_max_cpus("4,maxcpus=8"))
        self.assertEqual(p.cpus, [[(0, 3)], [(4, 7)]])


class Validation(unittest.TestCase):
    def test_node_counts_must_agree(self):
        with self.assertRaisesRegex(run.NumaError, "node counts disagree"):
            plan(numa=3, dist="10,21;21,10")
        with self.assertRaisesRegex(run.NumaError, "node counts disagree"):
            plan(cpus="0-3;4-7", mem="512M")

    def test_matrix_shape_and_values(self):
        with self.assertRaisesRegex(run.NumaError, "row 1 has 3 values"):
            plan(numa=2, dist="10,21;21,10,5")
        with self.assertRaisesRegex(run.NumaError, "must be 10"):
            plan(numa=2, dist="10,21;21,11")
        with self.assertRaisesRegex(run.NumaError, "outside 10..255"):
            plan(numa=2, dist="10,9;21,10")
        with self.assertRaisesRegex(run.NumaError, "outside 10..255"):
            plan(numa=2, dist="10,256;21,10")
        with self.assertRaisesRegex(run.NumaError, "not a list of numbers"):
            plan(numa=2, dist="10,x;21,10")
        # 10 between two nodes and 255 (no path) are QEMU's to accept and the kernel's to judge.
        self.assertEqual(plan(numa=2, dist="10,10;255,10").dist, [[10, 10], [255, 10]])

    def test_node_count_limits_and_memory(self):
        with self.assertRaisesRegex(run.NumaError, "use 1 to 64"):
            plan(numa=0)
        with self.assertRaisesRegex(run.NumaError, "less than 1 MiB per node"):
            plan(numa=4, total_mib=3)
        with self.assertRaisesRegex(run.NumaError, "whole MiB"):
            plan(cpus="0-7", mem="1.5G")
        with self.assertRaisesRegex(run.NumaError, "some node needs memory"):
            plan(cpus="0-3;4-7", mem="0;0")

    def test_command_line_errors_are_usage_errors(self):
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit) as e:
                qemu_args(["--numa", "2", "--numa-dist", "10,21;21,10;"])
            self.assertEqual(e.exception.code, 2)
            with self.assertRaises(SystemExit):
                qemu_args(["--emulator", "bochs", "--numa", "2"])

    def test_topology_sets_the_cpus_that_are_split(self):
        args = qemu_args(["--topology", "2x4x2", "--numa", "2"])
        self.assertIn("node,nodeid=1,cpus=8-15,memdev=numa-m1", args.numa_args)
        self.assertEqual(args.mem, "512M")

    def test_no_numa_options_no_numa_arguments(self):
        self.assertEqual(qemu_args([]).numa_args, [])


if __name__ == "__main__":
    unittest.main()
