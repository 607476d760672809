"""Building a workflow: every step checked before anything is stored, errors name the step."""

import pytest

from conveyor.errors import InvalidWorkflow
from conveyor.workflows import canvas, chain, chord, group
from conveyor.workflows.models import Workflow
from conveyor.workflows.plan import compile_tree
from demo.tasks import add, noop, total

pytestmark = pytest.mark.django_db


def test_a_chain_passes_each_value_to_the_next_step():
    # Given a chain of three adds
    # When it is compiled
    plan = compile_tree(chain(add.s(1, 2), add.s(3), add.s(4)))
    # Then each step after the first takes the one before it as its input
    assert [(s.input, s.depends_on) for s in plan.steps] == [(None, []), ({"step": 0}, [0]), ({"step": 1}, [1])]
    assert plan.result == {"step": 2}


def test_a_chord_callback_waits_for_every_member_in_order():
    # Given a chord of three members
    plan = compile_tree(chord(group(add.s(i, i) for i in range(3)), total.s()))
    # Then the callback's input is the members' values in order, and each member leads to it
    callback = plan.steps[3]
    assert callback.input == {"list": [{"step": 0}, {"step": 1}, {"step": 2}]}
    assert [s.then for s in plan.steps[:3]] == [[3], [3], [3]]
    assert [s.path for s in plan.steps] == [
        "workflow.chord.group[0]",
        "workflow.chord.group[1]",
        "workflow.chord.group[2]",
        "workflow.chord.then",
    ]


def test_groups_nest_in_chains_and_chains_in_groups():
    # Given chain(a, group(b, chain(c, d)), e)
    plan = compile_tree(chain(add.s(1, 1), group(add.s(1), chain(add.s(2), add.s(3))), total.s()))
    # Then b and c take a's value, d takes c's, and e takes [b, d]
    inputs = [s.input for s in plan.steps]
    assert inputs == [None, {"step": 0}, {"step": 0}, {"step": 2}, {"list": [{"step": 1}, {"step": 3}]}]


@pytest.mark.parametrize(
    "tree, step, words",
    [
        (chain(add.s(1, 2), canvas.Signature("demo.tasks.nope")), "workflow.chain[1]", "unknown task"),
        (chain(add.s(1, 2), add.s(1, 2)), "workflow.chain[1]", "too many positional arguments"),
        (chain(add.s("a", 2)), "workflow.chain[0]", "x"),
        (chain(add.s(1, 2), group()), "workflow.chain[1]", "empty group"),
        (chord([], total.s()), "workflow.chord.group", "empty group"),
        (chain(), "workflow", "empty chain"),
        (
            chain(add.s(1, 2), canvas.Signature("demo.tasks.add", (1,), {}, "no-such-queue")),
            "workflow.chain[1]",
            "queue",
        ),
    ],
)
def test_a_bad_workflow_is_refused_naming_the_step_and_nothing_is_stored(tree, step, words):
    # When a workflow with a bad step is built
    with pytest.raises(InvalidWorkflow) as raised:
        tree.enqueue()
    # Then the error names the step and says what is wrong, and nothing was stored
    assert raised.value.details["step"] == step
    assert words in raised.value.message
    assert not Workflow.objects.exists()


def test_a_workflow_that_contains_itself_is_refused():
    # Given a chain that contains itself
    loop = chain(noop.s())
    loop.parts.append(loop)
    # When it is built; Then it is refused as a cycle
    with pytest.raises(InvalidWorkflow, match="cycle"):
        compile_tree(loop)


def test_more_steps_than_the_limit_are_refused(settings):
    # Given a limit of 5 steps
    settings.CONVEYOR_WORKFLOW_MAX_STEPS = 5
    # When a group of 6 is built; Then it is refused naming the first step over the limit
    with pytest.raises(InvalidWorkflow, match="more than 5 steps") as raised:
        compile_tree(group(noop.s() for _ in range(6)))
    assert raised.value.details["step"] == "workflow.group[5]"


def test_the_json_form_reads_back_as_written():
    # Given a nested tree in its HTTP form
    data = {
        "chain": [
            {"task": "demo.tasks.add", "args": [1, 2], "kwargs": {}},
            {
                "chord": {
                    "group": [{"task": "demo.tasks.add", "args": [1], "kwargs": {}}],
                    "then": {"task": "demo.tasks.total", "args": [], "kwargs": {}},
                }
            },
        ]
    }
    # When it is read and written again; Then it is the same
    assert canvas.to_json(canvas.from_json(data)) == data


@pytest.mark.parametrize(
    "data, step",
    [
        ({"chain": [{"task": "demo.tasks.add", "args": [1, 2]}, {"tusk": "x"}]}, "workflow.chain[1]"),
        ({"group": "x"}, "workflow.group"),
        ({"chord": {"group": []}}, "workflow"),
        ({"chain": [{"task": "demo.tasks.add", "args": 5}]}, "workflow.chain[0]"),
    ],
)
def test_a_malformed_json_tree_is_refused_naming_the_node(data, step):
    # When a malformed tree is read; Then the error names the node
    with pytest.raises(InvalidWorkflow) as raised:
        canvas.from_json(data)
    assert raised.value.details["step"] == step
