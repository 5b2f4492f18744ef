/*
 * The Jenkins half of mlstack, executed without a Jenkins controller (none can be installed where the
 * tests run). Runs the repository's declarative Jenkinsfile, and the Job DSL seed script of
 * jenkins/casc.yaml, in Groovy 2.4.21: the Groovy that Jenkins 2.568.x bundles.
 *
 * Real here: Groovy parsing and evaluating both files (GStrings, closures, operators, Groovy truth),
 * /bin/sh running every `sh` script the way durable-task does (`sh -xe script`) against recording
 * stand-ins for the programs it calls, java.util.regex for the webhook filter.
 * Mocked, after the upstream sources named at each piece: Declarative's ModelInterpreter (stage order,
 * when, input, options wrappers, post conditions, failure/skip propagation), the steps, params, env,
 * currentBuild, the triggers' causes and parameter values, and the Job DSL contexts. Anything else is
 * refused with a HarnessError instead of being guessed.
 *
 * Usage: java -cp "<groovy home>/lib/*" groovy.ui.GroovyMain harness.groovy request.json
 * Request and answer are JSON: tests/support/jenkins/harness.py writes and reads them.
 */

import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import java.util.regex.Pattern
import org.codehaus.groovy.ast.ClassCodeExpressionTransformer
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MapExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.classgen.GeneratorContext
import org.codehaus.groovy.control.CompilePhase
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.customizers.CompilationCustomizer

// ---------------------------------------------------------------------------------------------------
// Errors: what the build sees (StepFailure, Interrupted) and what stops the harness (HarnessError).

/** The file or the scenario uses something this harness does not model: refused, never guessed. */
class HarnessError extends RuntimeException {
    HarnessError(String message) { super(message) }
}

/** A failed step, like hudson.AbortException: the stage and the build become FAILURE. */
class StepFailure extends RuntimeException {
    StepFailure(String message) { super(message) }
}

/** Like FlowInterruptedException: an aborted input or an expired timeout, with its result. */
class Interrupted extends RuntimeException {
    final String result

    Interrupted(String result, String message) {
        super(message)
        this.result = result
    }
}

/** hudson.model.Result: ordinals, combine() keeps the worse. */
class Results {
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']

    static String check(String result) {
        if (!(result in ORDER)) {
            throw new HarnessError("unknown build result '${result}' (one of ${ORDER})")
        }
        result
    }

    static String combine(String a, String b) {
        if (a == null) { return b }
        if (b == null) { return a }
        ORDER.indexOf(check(a)) >= ORDER.indexOf(check(b)) ? a : b
    }

    static String of(Throwable error) {
        if (error == null) { return 'SUCCESS' }
        error instanceof Interrupted ? ((Interrupted) error).result : 'FAILURE'
    }

    static boolean worseThan(String a, String b) { ORDER.indexOf(check(a)) > ORDER.indexOf(check(b)) }
}

// ---------------------------------------------------------------------------------------------------
// `when { equals expected: a, actual: b }`: Declarative turns it into a condition at parse time. Plain
// Groovy would call Closure.equals(Map) on the `when` closure itself (false, silently), so implicit-this
// calls of `equals` with named arguments are renamed to `declarativeEquals` when the file is compiled.

class DeclarativeEqualsRenamer extends CompilationCustomizer {
    DeclarativeEqualsRenamer() { super(CompilePhase.CONVERSION) }

    @Override
    void call(SourceUnit source, GeneratorContext context, ClassNode classNode) {
        new EqualsTransformer(source).visitClass(classNode)
    }
}

class EqualsTransformer extends ClassCodeExpressionTransformer {
    final SourceUnit source

    EqualsTransformer(SourceUnit source) { this.source = source }

    @Override
    protected SourceUnit getSourceUnit() { source }

    @Override
    Expression transform(Expression exp) {
        if (exp instanceof ClosureExpression) {
            ((ClosureExpression) exp).code.visit(this)
            return exp
        }
        if (exp instanceof MethodCallExpression) {
            MethodCallExpression call = (MethodCallExpression) exp
            if (call.implicitThis && call.methodAsString == 'equals' && namedArguments(call.arguments)) {
                MethodCallExpression renamed = new MethodCallExpression(
                    new VariableExpression('this'), 'declarativeEquals', transform(call.arguments))
                renamed.implicitThis = true
                renamed.sourcePosition = call
                return renamed
            }
        }
        exp == null ? null : exp.transformExpression(this)
    }

    static boolean namedArguments(Expression args) {
        args instanceof TupleExpression && ((TupleExpression) args).expressions.size() == 1 &&
            ((TupleExpression) args).expressions[0] instanceof MapExpression
    }
}

// ---------------------------------------------------------------------------------------------------
// Definitions shared by the Jenkinsfile and the Job DSL: parameters and triggers, normalised to what
// Jenkins stores, so that the two files can be compared. Named arguments are the @DataBoundConstructor
// and @DataBoundSetter names of the classes (sources: docs/jenkins.md, "Plugin pins").

class Definitions {
    static final String GITHUB_PUSH = 'com.cloudbees.jenkins.GitHubPushTrigger'
    static final String SCM_TRIGGER = 'hudson.triggers.SCMTrigger'
    static final String TIMER_TRIGGER = 'hudson.triggers.TimerTrigger'
    static final String PARAMETERIZED_TIMER = 'org.jenkinsci.plugins.parameterizedscheduler.ParameterizedTimerTrigger'
    static final String GENERIC_TRIGGER = 'org.jenkinsci.plugins.gwt.GenericTrigger'

    /** GenericTrigger 2.4.1: constructor lists + setters (shouldNotFlattern is the deprecated spelling). */
    static final List<String> GENERIC_LISTS = ['genericVariables', 'genericRequestVariables', 'genericHeaderVariables']
    static final List<String> GENERIC_STRINGS = ['regexpFilterText', 'regexpFilterExpression', 'causeString', 'token', 'tokenCredentialId']
    static final List<String> GENERIC_FLAGS = ['printContributedVariables', 'printPostContent', 'silentResponse',
                                               'overrideQuietPeriod', 'shouldNotFlatten', 'allowSeveralTriggersPerBuild']
    /** GenericVariable(key, value) + setters expressionType (JSONPath|XPath, default JSONPath), defaultValue, regexpFilter. */
    static final List<String> VARIABLE_KEYS = ['key', 'value', 'expressionType', 'defaultValue', 'regexpFilter']

    static Map stringParameter(String name, Object defaultValue, Object description, boolean trim) {
        // StringParameterDefinition.setDefaultValue(fixEmpty) + StringParameterValue(fixNull): '' by default.
        [type: 'string', name: name, defaultValue: defaultValue == null ? '' : String.valueOf(defaultValue),
         choices: null, description: description == null ? '' : String.valueOf(description), trim: trim]
    }

    static Map booleanParameter(String name, Object defaultValue, Object description) {
        if (defaultValue != null && !(defaultValue instanceof Boolean)) {
            throw new HarnessError("booleanParam ${name}: defaultValue must be true or false, not ${defaultValue}")
        }
        [type: 'boolean', name: name, defaultValue: defaultValue == null ? false : defaultValue,
         choices: null, description: description == null ? '' : String.valueOf(description), trim: null]
    }

    static Map choiceParameter(String name, Object choices, Object description) {
        List<String> list = choices instanceof String ? ((String) choices).split('\n') as List : (List) choices
        if (!list) { throw new HarnessError("choice ${name}: at least one choice") }
        [type: 'choice', name: name, defaultValue: String.valueOf(list[0]), choices: list.collect { String.valueOf(it) },
         description: description == null ? '' : String.valueOf(description), trim: null]
    }

    static Map genericVariable(Map args) {
        unknownKeys('GenericVariable', args, VARIABLE_KEYS)
        if (args.key == null || args.value == null) {
            throw new HarnessError("GenericVariable needs key and value: ${args}")
        }
        String type = args.expressionType == null ? 'JSONPath' : String.valueOf(args.expressionType)
        if (!(type in ['JSONPath', 'XPath'])) { throw new HarnessError("GenericVariable expressionType ${type}") }
        [key: String.valueOf(args.key), value: String.valueOf(args.value), expressionType: type,
         defaultValue: args.defaultValue == null ? null : String.valueOf(args.defaultValue),
         regexpFilter: args.regexpFilter == null ? null : String.valueOf(args.regexpFilter)]
    }

    static Map genericTrigger(Map args) {
        Map settings = new LinkedHashMap(args)
        if (settings.containsKey('shouldNotFlattern')) {
            settings.shouldNotFlatten = settings.remove('shouldNotFlattern')
        }
        unknownKeys('GenericTrigger', settings, GENERIC_LISTS + GENERIC_STRINGS + GENERIC_FLAGS)
        Map out = [class: GENERIC_TRIGGER]
        out.genericVariables = (settings.genericVariables ?: []).collect { genericVariable((Map) it) }
        ['genericRequestVariables', 'genericHeaderVariables'].each { String list ->
            if (settings[list]) { throw new HarnessError("GenericTrigger ${list}: not modelled by the harness") }
            out[list] = []
        }
        GENERIC_STRINGS.each { out[it] = settings[it] == null ? null : String.valueOf(settings[it]) }
        GENERIC_FLAGS.each { String flag ->
            Object value = settings[flag]
            if (value != null && !(value instanceof Boolean)) {
                throw new HarnessError("GenericTrigger ${flag} must be true or false, not ${value}")
            }
            out[flag] = value == null ? false : value
        }
        out
    }

    static void unknownKeys(String what, Map args, List<String> known) {
        List unknown = args.keySet().findAll { !(it in known) } as List
        if (unknown) { throw new HarnessError("${what}: unknown argument(s) ${unknown}; known: ${known}") }
    }
}

// ---------------------------------------------------------------------------------------------------
// The pipeline model: Declarative's sections, collected by running the `pipeline {}` closure with
// section delegates. Bodies (environment, when, steps, post conditions) are kept for later, exactly
// as Declarative keeps them.

class StageModel {
    String name
    StageModel parent
    Closure when
    Closure steps
    List<StageModel> stages
    Map<String, Closure> post = [:]
    Map input
    List<Map> options = []
    Closure environment
    Object agent

    String path() { parent == null ? name : "${parent.path()} / ${name}" }
}

class PipelineModel {
    Object agent
    List<Map> options = []
    List<Map> parameters = []
    List<Map> triggers = []
    Closure environment
    List<StageModel> stages
    Map<String, Closure> post = [:]
}

abstract class Section {
    abstract String where()

    def methodMissing(String name, Object args) {
        throw new HarnessError("${where()}: '${name}' is not a directive the harness models")
    }

    def propertyMissing(String name) {
        throw new HarnessError("${where()}: unknown name '${name}'")
    }

    static Object within(Object delegate, Closure body) {
        Closure c = (Closure) body.clone()
        c.delegate = delegate
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c.call()
    }

    static Map namedArgs(String what, Object[] args) {
        if (args.length != 1 || !(args[0] instanceof Map)) {
            throw new HarnessError("${what}: expected named arguments, got ${args as List}")
        }
        (Map) args[0]
    }
}

class PipelineSection extends Section {
    final PipelineModel model

    PipelineSection(PipelineModel model) { this.model = model }

    String where() { 'pipeline' }

    def propertyMissing(String name) {
        if (name in ['any', 'none']) { return name }   // `agent any`, `agent none`
        super.propertyMissing(name)
    }

    void agent(Object spec) { model.agent = AgentSection.spec(spec, 'pipeline agent') }
    void options(Closure body) { within(new OptionsSection(model.options, 'pipeline options', OptionsSection.PIPELINE), body) }
    void parameters(Closure body) { within(new ParametersSection(model.parameters, 'parameters'), body) }
    void triggers(Closure body) { within(new TriggersSection(model.triggers), body) }
    void environment(Closure body) { model.environment = body }
    void stages(Closure body) { model.stages = StagesSection.collect(body, null) }
    void post(Closure body) { within(new PostSection(model.post, 'pipeline post'), body) }
}

class AgentSection extends Section {
    final Map spec = [:]
    String where() { 'agent' }

    static Object spec(Object value, String where) {
        if (value in ['any', 'none']) { return value }
        if (value instanceof Closure) {
            AgentSection section = new AgentSection()
            within(section, (Closure) value)
            return section.spec
        }
        throw new HarnessError("${where}: unsupported agent ${value}")
    }

    void label(String label) { spec.label = label }
    void node(Closure body) { spec.node = 'closure' }
    void docker(Object image) { spec.docker = image instanceof Closure ? 'closure' : image }
    void dockerfile(Object value) { spec.dockerfile = value instanceof Closure ? 'closure' : value }
}

class OptionsSection extends Section {
    /** Declarative options, job properties and wrappers known at pipeline and at stage level. */
    static final List<String> PIPELINE = ['buildDiscarder', 'logRotator', 'checkoutToSubdirectory', 'disableConcurrentBuilds',
                                          'disableResume', 'durabilityHint', 'newContainerPerStage', 'overrideIndexTriggers',
                                          'parallelsAlwaysFailFast', 'preserveStashes', 'quietPeriod', 'retry',
                                          'skipDefaultCheckout', 'skipStagesAfterUnstable', 'timeout', 'timestamps']
    static final List<String> STAGE = ['retry', 'skipDefaultCheckout', 'timeout', 'timestamps']
    final List<Map> out
    final String label
    final List<String> known

    OptionsSection(List<Map> out, String label, List<String> known) {
        this.out = out
        this.label = label
        this.known = known
    }

    String where() { label }

    def methodMissing(String name, Object args) {
        if (!(name in known)) {
            throw new HarnessError("${label}: '${name}' is not an option the harness models (${known})")
        }
        Object[] list = (Object[]) args
        Map record = [name: name, args: list.length == 1 ? list[0] : (list as List)]
        if (name != 'logRotator') { out << record }   // logRotator() is buildDiscarder's argument
        record
    }
}

class ParametersSection extends Section {
    static final Map<String, List<String>> KEYS = [
        string      : ['name', 'defaultValue', 'description', 'trim'],
        booleanParam: ['name', 'defaultValue', 'description'],
        choice      : ['name', 'choices', 'description'],
    ]
    final List<Map> out
    final String label

    ParametersSection(List<Map> out, String label) {
        this.out = out
        this.label = label
    }

    String where() { label }

    def methodMissing(String name, Object args) {
        if (!KEYS.containsKey(name)) {
            throw new HarnessError("${label}: '${name}' is not a parameter type the harness models (${KEYS.keySet()})")
        }
        Map a = namedArgs("${label} ${name}", (Object[]) args)
        Definitions.unknownKeys("${label} ${name}", a, KEYS[name])
        if (!a.name) { throw new HarnessError("${label} ${name}: no name") }
        String parameter = String.valueOf(a.name)
        if (out.any { it.name == parameter }) { throw new HarnessError("${label}: duplicate parameter ${parameter}") }
        switch (name) {
            case 'string':
                out << Definitions.stringParameter(parameter, a.defaultValue, a.description, a.trim == true)
                break
            case 'booleanParam':
                out << Definitions.booleanParameter(parameter, a.defaultValue, a.description)
                break
            default:
                out << Definitions.choiceParameter(parameter, a.choices, a.description)
        }
        null
    }
}

class TriggersSection extends Section {
    final List<Map> out

    TriggersSection(List<Map> out) { this.out = out }

    String where() { 'triggers' }

    void githubPush() { out << [class: Definitions.GITHUB_PUSH] }

    void pollSCM(String spec) { out << [class: Definitions.SCM_TRIGGER, spec: spec, ignorePostCommitHooks: false] }

    void cron(String spec) { out << [class: Definitions.TIMER_TRIGGER, spec: spec] }

    void parameterizedCron(String spec) { out << [class: Definitions.PARAMETERIZED_TIMER, parameterizedSpecification: spec] }

    void GenericTrigger(Map args) { out << Definitions.genericTrigger(args) }
}

class StagesSection extends Section {
    final List<StageModel> out = []
    final StageModel parent

    StagesSection(StageModel parent) { this.parent = parent }

    String where() { parent == null ? 'stages' : "stage '${parent.path()}' stages" }

    static List<StageModel> collect(Closure body, StageModel parent) {
        StagesSection section = new StagesSection(parent)
        within(section, body)
        if (!section.out) { throw new HarnessError("${section.where()}: no stage") }
        section.out
    }

    void stage(String name, Closure body) {
        if (out.any { it.name == name }) { throw new HarnessError("${where()}: duplicate stage '${name}'") }
        StageModel stage = new StageModel(name: name, parent: parent)
        within(new StageSection(stage), body)
        int bodies = [stage.steps, stage.stages].count { it != null }
        if (bodies != 1) { throw new HarnessError("stage '${stage.path()}': exactly one of steps or stages") }
        out << stage
    }
}

class StageSection extends Section {
    final StageModel stage

    StageSection(StageModel stage) { this.stage = stage }

    String where() { "stage '${stage.path()}'" }

    def propertyMissing(String name) {
        if (name in ['any', 'none']) { return name }
        super.propertyMissing(name)
    }

    void agent(Object spec) { stage.agent = AgentSection.spec(spec, "${where()} agent") }
    void when(Closure body) { stage.when = body }
    void steps(Closure body) { stage.steps = body }
    void stages(Closure body) { stage.stages = StagesSection.collect(body, stage) }
    void environment(Closure body) { stage.environment = body }
    void options(Closure body) { within(new OptionsSection(stage.options, "${where()} options", OptionsSection.STAGE), body) }
    void post(Closure body) { within(new PostSection(stage.post, "${where()} post"), body) }

    void input(Closure body) {
        InputSection section = new InputSection(where())
        within(section, body)
        if (!section.input.message) { throw new HarnessError("${where()} input: no message") }
        stage.input = section.input
    }
}

class InputSection extends Section {
    final Map input = [parameters: []]
    final String label

    InputSection(String label) { this.label = label }

    String where() { "${label} input" }

    void message(String value) { input.message = value }
    void id(String value) { input.id = value }
    void ok(String value) { input.ok = value }
    void submitter(String value) { input.submitter = value }
    void submitterParameter(String value) { input.submitterParameter = value }
    void parameters(Closure body) { within(new ParametersSection((List<Map>) input.parameters, "${where()} parameters"), body) }
}

class PostSection extends Section {
    /** BuildCondition extensions, in their execution order (descending @Extension ordinal). */
    static final List<String> ORDER = ['always', 'changed', 'fixed', 'regression', 'aborted', 'success',
                                       'unsuccessful', 'unstable', 'failure', 'notBuilt', 'cleanup']
    final Map<String, Closure> out
    final String label

    PostSection(Map<String, Closure> out, String label) {
        this.out = out
        this.label = label
    }

    String where() { label }

    def methodMissing(String name, Object args) {
        Object[] list = (Object[]) args
        if (!(name in ORDER) || list.length != 1 || !(list[0] instanceof Closure)) {
            throw new HarnessError("${label}: '${name}' is not a post condition (${ORDER})")
        }
        if (out.containsKey(name)) { throw new HarnessError("${label}: duplicate condition ${name}") }
        out[name] = (Closure) list[0]
        null
    }
}

// ---------------------------------------------------------------------------------------------------
// `when` conditions (pipeline-model-definition's *ConditionalScript classes). Collected afresh each
// time they are evaluated, like ModelInterpreter.instancesFromClosure does.

abstract class Condition {
    abstract boolean evaluate()
    abstract String describe()
}

class ExpressionCondition extends Condition {
    Closure block
    Steps runtime

    boolean evaluate() {
        Closure c = (Closure) block.clone()
        c.delegate = runtime
        c.resolveStrategy = Closure.DELEGATE_FIRST
        Object value = c.call()
        value ? true : false   // ExpressionConditionalScript: Groovy truth
    }

    String describe() { 'expression' }
}

class EqualsCondition extends Condition {
    Object expected
    Object actual

    boolean evaluate() { expected == actual }   // EqualsConditionalScript

    String describe() { "equals(expected: ${JsonOutput.toJson(expected)}, actual: ${JsonOutput.toJson(actual)})" }
}

class NotCondition extends Condition {
    Condition child

    boolean evaluate() { !child.evaluate() }

    String describe() { "not(${child.describe()})" }
}

class AllOfCondition extends Condition {
    List<Condition> children
    boolean any

    boolean evaluate() { any ? children.any { it.evaluate() } : children.every { it.evaluate() } }

    String describe() { "${any ? 'anyOf' : 'allOf'}(${children*.describe().join(', ')})" }
}

class EnvironmentCondition extends Condition {
    String name
    String value
    boolean ignoreCase
    Steps runtime

    boolean evaluate() {
        String actual = runtime.build.envValue(name, false)
        actual != null && (ignoreCase ? actual.equalsIgnoreCase(value) : actual == value)
    }

    String describe() { "environment(${name} == ${value})" }
}

class WhenCollector {
    final Steps runtime
    final String label
    final List<Condition> conditions = []
    final Map<String, Boolean> flags = [beforeAgent: false, beforeInput: false, beforeOptions: false]

    WhenCollector(Steps runtime, String label) {
        this.runtime = runtime
        this.label = label
    }

    static WhenCollector collect(Closure body, Steps runtime, String label) {
        WhenCollector collector = new WhenCollector(runtime, label)
        Section.within(collector, body)
        collector
    }

    ParamsMap getParams() { runtime.params }
    EnvProxy getEnv() { runtime.env }
    CurrentBuild getCurrentBuild() { runtime.currentBuild }

    void beforeAgent(boolean value) { flags.beforeAgent = value }
    void beforeInput(boolean value) { flags.beforeInput = value }
    void beforeOptions(boolean value) { flags.beforeOptions = value }

    void expression(Closure block) { conditions << new ExpressionCondition(block: block, runtime: runtime) }

    void declarativeEquals(Map args) {
        Definitions.unknownKeys("${label} equals", args, ['expected', 'actual'])
        if (!args.containsKey('expected') || !args.containsKey('actual')) {
            throw new HarnessError("${label}: equals needs expected and actual")
        }
        conditions << new EqualsCondition(expected: args.expected, actual: args.actual)
    }

    void not(Closure body) {
        WhenCollector inner = collect(body, runtime, "${label} not")
        if (inner.conditions.size() != 1) { throw new HarnessError("${label}: not takes exactly one condition") }
        conditions << new NotCondition(child: inner.conditions[0])
    }

    void allOf(Closure body) { conditions << new AllOfCondition(children: children(body, 'allOf'), any: false) }

    void anyOf(Closure body) { conditions << new AllOfCondition(children: children(body, 'anyOf'), any: true) }

    void environment(Map args) {
        Definitions.unknownKeys("${label} environment", args, ['name', 'value', 'ignoreCase'])
        conditions << new EnvironmentCondition(name: args.name, value: args.value, ignoreCase: args.ignoreCase == true,
                                               runtime: runtime)
    }

    private List<Condition> children(Closure body, String what) {
        WhenCollector inner = collect(body, runtime, "${label} ${what}")
        if (inner.conditions.size() < 2) { throw new HarnessError("${label}: ${what} needs at least two conditions") }
        inner.conditions
    }

    def methodMissing(String name, Object args) {
        throw new HarnessError("${label}: condition '${name}' is not modelled by the harness")
    }
}

// ---------------------------------------------------------------------------------------------------
// The runtime: params, env, currentBuild, the steps, and the shell that runs `sh` scripts.

/** `params`: read-only; a name no parameter declares reads null in Jenkins, and is reported here. */
class ParamsMap extends LinkedHashMap {
    Build build
    boolean frozen

    @Override
    Object get(Object key) {
        if (!containsKey(key) && build != null) { build.undefined("params.${key}") }
        super.get(key)
    }

    @Override
    Object put(Object key, Object value) {
        if (frozen) { throw new StepFailure('params is read-only (java.lang.UnsupportedOperationException)') }
        super.put(key, value)
    }
}

/** `env`: the build's environment as a `sh` step would get it; unknown names read null (reported). */
class EnvProxy {
    final Build owner

    EnvProxy(Build owner) { this.owner = owner }

    def propertyMissing(String name) { owner.envValue(name, true) }

    def propertyMissing(String name, Object value) {
        owner.globalEnv[name] = value == null ? null : String.valueOf(value)
    }

    Map getEnvironment() { owner.environment() }
}

/** `currentBuild` (workflow-support RunWrapper): the parts a Jenkinsfile may use. */
class CurrentBuild {
    final Build owner

    CurrentBuild(Build owner) { this.owner = owner }

    /** RunWrapper.getBuildCauses(String): causes whose class name is exactly this one. */
    List getBuildCauses(String className) {
        owner.causeQueries << className
        owner.causes.findAll { it._class == className }.collect { new LinkedHashMap(it) }
    }

    List getBuildCauses() { owner.causes.collect { new LinkedHashMap(it) } }

    String getResult() { owner.result }

    /** Run.setResult only ever makes the result worse. */
    void setResult(String result) { owner.result = Results.combine(owner.result, Results.check(result)) }

    String getCurrentResult() { owner.result ?: 'SUCCESS' }

    int getNumber() { owner.number }

    String getDisplayName() { "#${owner.number}" }

    boolean resultIsBetterOrEqualTo(String other) { !Results.worseThan(getCurrentResult(), other) }

    boolean resultIsWorseOrEqualTo(String other) { !Results.worseThan(other, getCurrentResult()) }

    def propertyMissing(String name) { throw new HarnessError("currentBuild.${name} is not modelled") }

    def methodMissing(String name, Object args) { throw new HarnessError("currentBuild.${name}() is not modelled") }
}

/** Runs one `sh` script as Jenkins' durable-task does (`sh -xe script`), with recording stand-ins. */
class Shell {
    final File workspace
    final File control
    final File shims
    final File argvLog

    Shell(File root, List<String> pathPrograms, List<String> workspacePrograms) {
        workspace = new File(root, 'workspace')
        control = new File(root, 'control')
        shims = new File(root, 'shims')
        [workspace, control, shims].each { it.mkdirs() }
        argvLog = new File(control, 'argv.log')
        pathPrograms.each { writeShim(new File(shims, it), it) }
        workspacePrograms.each { writeShim(new File(workspace, it), it) }
    }

    private static void writeShim(File file, String name) {
        file.parentFile.mkdirs()
        String quoted = "'" + name.replace("'", "'\\''") + "'"
        file.text = """#!/bin/sh
# mlstack Jenkins harness: stand-in for ${name}; records its argv, fails when the scenario says so.
{ printf '%s\\037' ${quoted}; for a in "\$@"; do printf '%s\\037' "\$a"; done; printf '\\036'; } >> "\$HARNESS_ARGV_LOG"
if [ -n "\$HARNESS_FAIL" ]; then echo "${name}: failing on purpose (scenario)" >&2; exit 1; fi
"""
        file.setExecutable(true)
    }

    Map run(String script, Map<String, String> env, boolean fail) {
        File scriptFile = new File(control, 'script.sh')
        scriptFile.text = script
        argvLog.text = ''
        ProcessBuilder builder = new ProcessBuilder(['/bin/sh', '-xe', scriptFile.path])
        builder.directory(workspace)
        builder.redirectErrorStream(true)
        Map<String, String> processEnv = builder.environment()
        processEnv.clear()
        env.each { k, v -> if (v != null) { processEnv[k] = v } }
        processEnv.PATH = shims.path
        processEnv.WORKSPACE = workspace.path
        processEnv.HARNESS_ARGV_LOG = argvLog.path
        if (fail) { processEnv.HARNESS_FAIL = '1' }
        Process process = builder.start()
        process.outputStream.close()   // nothing on stdin, as in a Jenkins sh step
        String output = process.inputStream.text
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly()
            throw new HarnessError("sh did not finish in 60 s: ${script}")
        }
        List<List<String>> argv = argvLog.text.split('\u001e').findAll { it }.collect { String record ->
            record.split('\u001f', -1).toList().dropRight(1)
        }
        [exit: process.exitValue(), argv: argv, output: output]
    }
}

/** One build: its parameters, causes, environment, result, and the record of what it did. */
class Build {
    Map scenario
    String jobName
    int number
    List<Map> causes = []
    ParamsMap params = new ParamsMap()
    Map<String, String> baseEnv = [:]
    Map<String, String> globalEnv = [:]
    List<Map<String, String>> envStack = []
    String result
    List<Map> warnings = []
    List<Map> stageRecords = []
    List<Map> stageStack = []
    List<Map> steps = []
    List<Map> posts = []
    List<Map> inputs = []
    List<String> causeQueries = []
    List<String> undefinedRefs = []
    List<Map> timeouts = []
    String section = 'steps'
    String error
    Object agent
    Shell shell
    EnvProxy envProxy = new EnvProxy(this)
    CurrentBuild currentBuild = new CurrentBuild(this)

    void undefined(Object reference) {
        String text = reference.toString()
        if (!(text in undefinedRefs)) { undefinedRefs << text }
    }

    /** EnvironmentExpander order: innermost withEnv, ..., env.X assignments, the build's own variables. */
    String envValue(String name, boolean report) {
        for (Map<String, String> layer : envStack.reverse()) {
            if (layer.containsKey(name)) { return layer[name] }
        }
        if (globalEnv.containsKey(name)) { return globalEnv[name] }
        if (baseEnv.containsKey(name)) { return baseEnv[name] }
        if (report) { undefined("env.${name}") }
        null
    }

    Map<String, String> environment() {
        Map<String, String> all = new LinkedHashMap(baseEnv)
        all.putAll(globalEnv)
        envStack.each { all.putAll(it) }
        all
    }

    Map currentStage() { stageStack ? stageStack[-1] : null }

    String stageName() { currentStage()?.name }

    void record(String step, Map args) {
        steps << ([step: step, stage: stageName(), path: currentStage()?.path, section: section] + args)
    }
}

/** The delegate of `steps`, `environment`, `post` and `expression {}` bodies: Jenkins' CpsScript. */
class Steps {
    final Build build

    Steps(Build build) { this.build = build }

    ParamsMap getParams() { build.params }
    EnvProxy getEnv() { build.envProxy }
    CurrentBuild getCurrentBuild() { build.currentBuild }
    Map getScm() { [_class: 'hudson.plugins.git.GitSCM', from: 'the job definition'] }

    /** A bare name is an environment variable (CpsScript.getProperty), else the build fails. */
    def propertyMissing(String name) {
        String value = build.envValue(name, false)
        if (value == null) {
            throw new StepFailure("groovy.lang.MissingPropertyException: No such property: ${name} for class: WorkflowScript")
        }
        value
    }

    def methodMissing(String name, Object args) {
        throw new HarnessError("step '${name}' is not modelled by the harness (stage ${build.stageName()})")
    }

    /** Bodies nested in a step resolve names through their enclosing closure, whose delegate is this. */
    private Object run(Closure body) { body.call() }

    def sh(String script) { sh([script: script]) }

    def sh(Map args) {
        Definitions.unknownKeys('sh', args, ['script', 'returnStatus', 'returnStdout', 'label', 'encoding'])
        if (build.agent == null || build.agent == 'none') {
            throw new StepFailure('Required context class hudson.FilePath is missing (no agent)')
        }
        String script = String.valueOf(args.script)
        boolean fail = build.section == 'steps' && build.stageName() in (build.scenario.failing_stages ?: [])
        Map env = build.environment()
        Map ran = build.shell.run(script, env, fail)
        build.record('sh', [script: script, argv: ran.argv, exit: ran.exit, env: env, output: ran.output])
        if (args.returnStatus) { return ran.exit }
        if (ran.exit != 0) { throw new StepFailure("script returned exit code ${ran.exit}") }
        args.returnStdout ? ran.output : null
    }

    void echo(Object message) { build.record('echo', [message: String.valueOf(message)]) }

    void error(String message) {
        build.record('error', [message: message])
        throw new StepFailure(message)
    }

    void unstable(String message) {
        build.record('unstable', [message: message])
        build.result = Results.combine(build.result, 'UNSTABLE')
        build.warnings << [path: build.currentStage()?.path, result: 'UNSTABLE']
    }

    void checkout(Object scm) { build.record('checkout', [scm: scm]) }

    def script(Closure body) { run(body) }

    def dir(String path, Closure body) {
        build.record('dir', [dir: path])
        run(body)
    }

    def withEnv(List overrides, Closure body) {
        Map<String, String> layer = [:]
        overrides.each { String entry ->
            int eq = entry.indexOf('=')
            if (eq < 1) { throw new StepFailure("withEnv: '${entry}' is not NAME=value") }
            layer[entry.substring(0, eq)] = entry.substring(eq + 1)
        }
        build.envStack << layer
        try {
            run(body)
        } finally {
            build.envStack.remove(build.envStack.size() - 1)
        }
    }

    def timeout(int minutes, Closure body) { timeout([time: minutes], body) }

    def timeout(Map args, Closure body) {
        Definitions.unknownKeys('timeout', args, ['time', 'unit', 'activity'])
        build.timeouts << [time: args.time, unit: args.unit ?: 'MINUTES', activity: args.activity == true]
        try {
            run(body)
        } finally {
            build.timeouts.remove(build.timeouts.size() - 1)
        }
    }

    def catchError(Closure body) { catchError([:], body) }

    /** CatchErrorStep: buildResult FAILURE, stageResult SUCCESS, catchInterruptions true by default. */
    def catchError(Map args, Closure body) {
        Definitions.unknownKeys('catchError', args, ['buildResult', 'stageResult', 'message', 'catchInterruptions'])
        try {
            run(body)
        } catch (HarnessError e) {
            throw e
        } catch (Throwable e) {
            if (e instanceof Interrupted && args.catchInterruptions == false) { throw e }
            String buildResult = Results.check((String) (args.buildResult ?: 'FAILURE'))
            String stageResult = Results.check((String) (args.stageResult ?: 'SUCCESS'))
            if (e instanceof Interrupted) {
                buildResult = ((Interrupted) e).result
                stageResult = ((Interrupted) e).result
            }
            build.record('catchError', [caught: e.message, buildResult: buildResult, stageResult: stageResult])
            if (Results.worseThan(buildResult, 'SUCCESS')) { build.result = Results.combine(build.result, buildResult) }
            if (Results.worseThan(stageResult, 'SUCCESS')) {
                build.warnings << [path: build.currentStage()?.path, result: stageResult]
            }
            null
        }
    }

    def warnError(String message, Closure body) {
        catchError([message: message, buildResult: 'UNSTABLE', stageResult: 'UNSTABLE'], body)
    }

    /** ArtifactArchiver's @DataBoundConstructor/@DataBoundSetter names (core). */
    void archiveArtifacts(String artifacts) { archiveArtifacts([artifacts: artifacts]) }

    void archiveArtifacts(Map args) {
        Definitions.unknownKeys('archiveArtifacts', args, ['artifacts', 'allowEmptyArchive', 'caseSensitive', 'defaultExcludes',
                                                           'excludes', 'fingerprint', 'followSymlinks', 'onlyIfSuccessful'])
        build.record('archiveArtifacts', [args: args])
    }

    /** JUnitResultArchiver's names (junit plugin). */
    void junit(String testResults) { junit([testResults: testResults]) }

    void junit(Map args) {
        Definitions.unknownKeys('junit', args, ['testResults', 'allowEmptyResults', 'keepLongStdio', 'keepProperties',
                                                'keepTestNames', 'healthScaleFactor', 'skipMarkingBuildUnstable',
                                                'skipOldReports', 'skipPublishingChecks', 'checksName', 'stdioRetention'])
        build.record('junit', [args: args])
    }

    /**
     * The input step, answered from the scenario: proceed (returns the submitter when submitterParameter is
     * set), abort (FlowInterruptedException, ABORTED) or timeout (the innermost timeout expires, ABORTED).
     */
    def input(Map args) {
        String stage = build.stageName()
        Map answer = (Map) (build.scenario.input ?: [:])[stage]
        build.inputs << [stage: stage, message: args.message, ok: args.ok, submitter: args.submitter,
                         submitterParameter: args.submitterParameter, timeouts: new ArrayList(build.timeouts),
                         answer: answer]
        if (answer == null) {
            throw new HarnessError("stage '${stage}' waits for input '${args.message}': the scenario gives no answer")
        }
        switch (answer.action) {
            case 'proceed':
                return args.submitterParameter ? (answer.submitter ?: 'admin') : null
            case 'abort':
                throw new Interrupted('ABORTED', "Rejected by ${answer.submitter ?: 'admin'}")
            case 'timeout':
                if (!build.timeouts) {
                    throw new HarnessError("stage '${stage}': no timeout around the input, the build would wait forever")
                }
                throw new Interrupted('ABORTED', "Timeout has been exceeded (${build.timeouts[-1].time} ${build.timeouts[-1].unit})")
            default:
                throw new HarnessError("input answer ${answer}: action is proceed, abort or timeout")
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// ModelInterpreter, step by step (pipeline-model-definition, ModelInterpreter.groovy): stages in order,
// a failure skips the later stages, `when` (with beforeOptions/beforeInput/beforeAgent), the stage's
// options wrappers around its input and body, post conditions by BuildCondition with the combined result.

class Interpreter {
    final PipelineModel root
    final Build build
    final Steps steps

    Interpreter(PipelineModel root, Build build) {
        this.root = root
        this.build = build
        this.steps = new Steps(build)
    }

    void run() {
        Throwable firstError = null
        boolean postBuildRun = false
        build.agent = root.agent
        try {
            if (root.agent == null) { throw new StepFailure('pipeline: no agent section') }
            implicitCheckout()
            withEnvBlock(root.environment, 'pipeline environment') {
                inWrappers(root.options) {
                    firstError = evaluateSequentialStages(root.stages, null, null, null)
                    try {
                        postBuildRun = true
                        executePostBuild(firstError)
                    } catch (HarnessError e) {
                        throw e
                    } catch (Throwable e) {
                        if (firstError == null) { firstError = e }
                    }
                }
                if (firstError != null) { throw firstError }
            }
        } catch (HarnessError e) {
            throw e
        } catch (Throwable e) {
            if (firstError == null) { firstError = e }
        } finally {
            if (!postBuildRun) {
                try {
                    executePostBuild(firstError)
                } catch (HarnessError e) {
                    throw e
                } catch (Throwable ignored) {
                    // the build already failed with firstError
                }
            }
        }
        build.result = Results.combine(build.result ?: 'SUCCESS', Results.of(firstError))
        build.error = firstError?.message
    }

    /** Without skipDefaultCheckout, the agent checks out the job's SCM first (stage "Declarative: Checkout SCM"). */
    private void implicitCheckout() {
        if (root.agent == 'none' || root.options.any { it.name == 'skipDefaultCheckout' && it.args != false }) { return }
        openStage('Declarative: Checkout SCM', null, true)
        try {
            steps.checkout(steps.scm)
        } finally {
            closeStage('SUCCESS', null)
        }
    }

    private Object withEnvBlock(Closure environment, String label, Closure body) {
        if (environment == null) { return body.call() }
        Map<String, String> layer = [:]
        EnvironmentSection section = new EnvironmentSection(steps, layer, label)
        build.envStack << layer   // each variable sees the ones declared before it
        try {
            Section.within(section, environment)
            return body.call()
        } finally {
            build.envStack.remove(build.envStack.size() - 1)
        }
    }

    /** Wrapper options (timeout, timestamps, retry) around a body, outermost first. */
    private Object inWrappers(List<Map> options, Closure body) {
        List<Map> wrappers = options.findAll { it.name in ['timeout', 'timestamps', 'retry'] }
        if (!wrappers) { return body.call() }
        Map wrapper = wrappers[0]
        List<Map> rest = options - [wrapper]
        switch (wrapper.name) {
            case 'timeout':
                return steps.timeout((Map) wrapper.args) { inWrappers(rest, body) }
            case 'retry':
                if (wrapper.args != 1) { throw new HarnessError("options retry(${wrapper.args}) is not modelled") }
                return inWrappers(rest, body)
            default:
                return inWrappers(rest, body)   // timestamps: log decoration only
        }
    }

    private Throwable evaluateSequentialStages(List<StageModel> stages, Throwable firstError, StageModel parent,
                                               String skippedReason) {
        try {
            stages.each { StageModel stage ->
                try {
                    evaluateStage(stage, firstError, skippedReason)
                } catch (HarnessError e) {
                    throw e
                } catch (Throwable e) {
                    if (firstError == null) { firstError = e }
                }
            }
        } finally {
            if (skippedReason == null && parent != null && parent.post) {
                firstError = runPostConditions(parent.post, firstError, parent)
            }
        }
        firstError
    }

    private void evaluateStage(StageModel stage, Throwable firstError, String skippedReason) {
        openStage(stage.name, stage, false)
        Throwable stageError = null
        String status = null
        try {
            if (skippedReason != null) {
                status = skipStage(stage, firstError, skippedReason)
            } else if (firstError != null) {
                status = skipStage(stage, firstError, 'earlier failure')
            } else if (build.result == 'UNSTABLE' && root.options.any { it.name == 'skipStagesAfterUnstable' }) {
                status = skipStage(stage, firstError, 'unstable')
            } else {
                WhenEvaluator when = new WhenEvaluator(stage, steps)
                if (when.passedOrNotEvaluated('beforeOptions')) {
                    inWrappers(stage.options) {
                        if (when.passedOrNotEvaluated('beforeInput')) {
                            stageInput(stage) {
                                if (when.passedOrNotEvaluated('beforeAgent')) {
                                    withStageAgent(stage) {
                                        if (when.passedOrNotEvaluated(null)) {
                                            withEnvBlock(stage.environment, "stage '${stage.path()}' environment") {
                                                if (stage.stages) {
                                                    Throwable nested = evaluateSequentialStages(stage.stages, firstError, stage, null)
                                                    if (nested != null) { throw nested }
                                                } else {
                                                    executeSingleStage(stage)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                if (!when.passed) {
                    status = skipStage(stage, firstError, 'when')
                }
            }
        } catch (HarnessError e) {
            throw e
        } catch (Throwable e) {
            stageError = e
            if (firstError == null) { firstError = e }
        } finally {
            closeStage(status, stageError)
        }
        if (firstError != null) { throw firstError }
    }

    private String skipStage(StageModel stage, Throwable firstError, String reason) {
        build.currentStage().skipped = reason
        if (stage.stages) { evaluateSequentialStages(stage.stages, firstError, stage, reason) }
        "SKIPPED (${reason})"
    }

    private Object withStageAgent(StageModel stage, Closure body) {
        if (stage.agent == null) { return body.call() }
        Object outer = build.agent
        build.agent = stage.agent
        try {
            return body.call()
        } finally {
            build.agent = outer
        }
    }

    /** ModelInterpreter.stageInput: the input step, then the body (with the submitter variable if asked for). */
    private Object stageInput(StageModel stage, Closure body) {
        if (stage.input == null) { return body.call() }
        Map input = stage.input
        Object submitted = steps.input(message: input.message, id: input.id, ok: input.ok, submitter: input.submitter,
                                       submitterParameter: input.submitterParameter, parameters: input.parameters)
        if (input.submitterParameter) {
            return steps.withEnv(["${input.submitterParameter}=${submitted}".toString()], body)
        }
        if (input.parameters) { throw new HarnessError("stage '${stage.path()}': input parameters are not modelled") }
        body.call()
    }

    private void executeSingleStage(StageModel stage) {
        Throwable stageError = null
        try {
            Closure c = (Closure) stage.steps.clone()
            c.delegate = steps
            c.resolveStrategy = Closure.DELEGATE_FIRST
            c.call()
        } catch (HarnessError e) {
            throw e
        } catch (Throwable e) {
            stageError = e
        } finally {
            if (stage.post) { stageError = runPostConditions(stage.post, stageError, stage) }
        }
        if (stageError != null) { throw stageError }
    }

    private void executePostBuild(Throwable stageError) {
        if (root.post) {
            openStage('Declarative: Post Actions', null, true)
            try {
                stageError = runPostConditions(root.post, stageError, null)
            } finally {
                closeStage(null, null)
            }
        }
        if (stageError != null) { throw stageError }
    }

    /** The result a post condition sees: the build's, the error's, and (for a stage) its warnings. */
    private String combinedResult(Throwable error, StageModel stage) {
        String result = Results.combine(build.result ?: 'SUCCESS', Results.of(error))
        if (stage != null) {
            build.warnings.findAll { it.path == stage.path() || ((String) it.path)?.startsWith(stage.path() + ' / ') }.each {
                result = Results.combine(result, (String) it.result)
            }
        }
        result
    }

    private boolean meets(String condition, String result) {
        switch (condition) {
            case 'always': case 'cleanup': return true
            case 'aborted': return result == 'ABORTED'
            case 'success': return result == 'SUCCESS'
            case 'unsuccessful': return result != 'SUCCESS'
            case 'unstable': return result == 'UNSTABLE'
            case 'failure': return result == 'FAILURE'
            case 'notBuilt': return result == 'NOT_BUILT'
            default:
                // changed, fixed, regression compare with the previous build: the scenario says what it was.
                String previous = build.scenario.previous_result
                if (previous == null) {
                    throw new HarnessError("post ${condition} needs the previous build's result (scenario previous_result)")
                }
                if (condition == 'changed') { return result != previous }
                if (condition == 'fixed') { return result == 'SUCCESS' && previous in ['FAILURE', 'UNSTABLE'] }
                return Results.worseThan(result, previous)
        }
    }

    private Throwable runPostConditions(Map<String, Closure> post, Throwable stageError, StageModel stage) {
        PostSection.ORDER.each { String condition ->
            Closure body = post[condition]
            if (body == null) { return }
            String result = combinedResult(stageError, stage)
            if (!meets(condition, result)) { return }
            String original = build.result
            String previousSection = build.section
            build.posts << [scope: stage == null ? 'pipeline' : stage.path(), condition: condition, result: result]
            build.section = "post ${condition}".toString()
            build.result = result   // the logical result, while the condition runs (ModelInterpreter.runPostConditions)
            try {
                Closure c = (Closure) body.clone()
                c.delegate = steps
                c.resolveStrategy = Closure.DELEGATE_FIRST
                c.call()
            } catch (HarnessError e) {
                throw e
            } catch (Throwable e) {
                if (stageError == null) { stageError = e }
            } finally {
                build.section = previousSection
                if ((build.result ?: 'SUCCESS') == result && result != original) { build.result = original }
            }
        }
        stageError
    }

    private void openStage(String name, StageModel stage, boolean synthetic) {
        Map record = [name: name, path: stage == null ? name : stage.path(), parent: stage?.parent?.path(),
                      synthetic: synthetic, status: null, skipped: null]
        build.stageRecords << record
        build.stageStack << record
    }

    private void closeStage(String status, Throwable error) {
        Map record = build.stageStack.remove(build.stageStack.size() - 1)
        if (status != null) {
            record.status = status
        } else if (error != null) {
            record.status = Results.of(error)
            record.error = error.message
        } else {
            String result = 'SUCCESS'
            build.warnings.findAll { it.path == record.path || ((String) it.path)?.startsWith(record.path + ' / ') }.each {
                result = Results.combine(result, (String) it.result)
            }
            record.status = result
        }
    }
}

/** Declarative `environment {}`: NAME = value, in order; a value is the String the GString gives. */
class EnvironmentSection {
    final Steps runtime
    final Map<String, String> layer
    final String label

    EnvironmentSection(Steps runtime, Map<String, String> layer, String label) {
        this.runtime = runtime
        this.layer = layer
        this.label = label
    }

    ParamsMap getParams() { runtime.params }
    EnvProxy getEnv() { runtime.env }
    CurrentBuild getCurrentBuild() { runtime.currentBuild }

    def propertyMissing(String name, Object value) {
        if (!(name ==~ /[A-Za-z_][A-Za-z0-9_]*/)) { throw new HarnessError("${label}: bad variable name ${name}") }
        if (value == null) { throw new StepFailure("${label}: environment variable ${name} is null") }
        layer[name] = String.valueOf(value)
    }

    /** A variable declared earlier in the block (or any build variable), like Declarative's resolver. */
    def propertyMissing(String name) { runtime.build.envValue(name, true) }

    def methodMissing(String name, Object args) {
        if (name == 'credentials') { throw new HarnessError("${label}: credentials() is not modelled") }
        throw new HarnessError("${label}: '${name}' is not modelled")
    }
}

class WhenEvaluator {
    final StageModel stage
    final Steps runtime
    boolean passed
    Map<String, Boolean> flags = [:]

    WhenEvaluator(StageModel stage, Steps runtime) {
        this.stage = stage
        this.runtime = runtime
        this.passed = stage.when == null
        if (stage.when != null) {
            flags = WhenCollector.collect(stage.when, runtime, "stage '${stage.path()}' when").flags
        }
    }

    /** flag = null: the regular evaluation point (after input and agent). */
    boolean passedOrNotEvaluated(String flag) {
        if (passed || (flag != null && !flags[flag])) { return true }
        WhenCollector collector = WhenCollector.collect(stage.when, runtime, "stage '${stage.path()}' when")
        if (!collector.conditions) { throw new HarnessError("stage '${stage.path()}' when: no condition") }
        List<Map> evaluated = collector.conditions.collect { Condition c -> [condition: c.describe(), value: c.evaluate()] }
        runtime.build.currentStage().when = evaluated
        passed = evaluated.every { it.value }
        passed
    }
}

// ---------------------------------------------------------------------------------------------------
// Triggers: how each kind of build starts, what causes it records and what parameter values it gets.

class Triggers {
    static final Map<String, String> CAUSES = [
        manual : 'hudson.model.Cause$UserIdCause',
        push   : 'com.cloudbees.jenkins.GitHubPushCause',
        poll   : 'hudson.triggers.SCMTrigger$SCMTriggerCause',
        cron   : 'org.jenkinsci.plugins.parameterizedscheduler.ParameterizedTimerTriggerCause',
        timer  : 'hudson.triggers.TimerTrigger$TimerTriggerCause',
        webhook: 'org.jenkinsci.plugins.gwt.GenericCause',
    ]

    /** ParameterDefinition.createValue(String): trimmed if asked, a choice must be one of the choices. */
    static Object createValue(Map definition, Object raw) {
        switch (definition.type) {
            case 'boolean':
                return raw instanceof Boolean ? raw : Boolean.parseBoolean(String.valueOf(raw))
            case 'choice':
                String value = String.valueOf(raw)
                if (!(value in definition.choices)) {
                    throw new StepFailure("Illegal choice for parameter ${definition.name}: ${value}")
                }
                return value
            default:
                String value = raw == null ? '' : String.valueOf(raw)
                return definition.trim ? value.trim() : value
        }
    }

    static Map defaults(List<Map> definitions) {
        Map values = [:]
        definitions.each { Map d -> values[d.name] = createValue(d, d.defaultValue) }
        values
    }

    static Map requireTrigger(List<Map> triggers, String className, String kind) {
        Map found = triggers.find { it.class == className }
        if (found == null) { throw new NotTriggered("the job has no ${className} for a ${kind} build") }
        found
    }

    /** [causes, params, env] for the scenario's trigger, or NotTriggered. */
    static Map start(PipelineModel model, Map scenario, Map credentials) {
        Map trigger = (Map) (scenario.trigger ?: [type: 'manual'])
        String type = trigger.type
        Map values = defaults(model.parameters)
        Map env = [:]
        List<String> undefined = []
        List<Map> causes
        switch (type) {
            case 'manual':   // Build with Parameters: every value from the form, through createValue
                Map given = (Map) (trigger.parameters ?: [:])
                given.each { name, raw ->
                    Map d = model.parameters.find { it.name == name }
                    if (d == null) { throw new HarnessError("manual build: no parameter ${name}") }
                    values[name] = createValue(d, raw)
                }
                causes = [[_class: CAUSES.manual, shortDescription: "Started by user ${trigger.user ?: 'admin'}",
                           userId: trigger.user ?: 'admin']]
                break
            case 'push':     // GitHubPushTrigger: a build with the default parameter values
                requireTrigger(model.triggers, Definitions.GITHUB_PUSH, type)
                causes = [[_class: CAUSES.push, shortDescription: "Started by GitHub push by ${trigger.pusher ?: 'someone'}"]]
                break
            case 'poll':     // SCMTrigger found a change
                requireTrigger(model.triggers, Definitions.SCM_TRIGGER, type)
                causes = [[_class: CAUSES.poll, shortDescription: 'Started by an SCM change']]
                break
            case 'cron':     // ParameterizedTimerTrigger: the line's NAME=value pairs, defaults for the rest
                Map cron = requireTrigger(model.triggers, Definitions.PARAMETERIZED_TIMER, type)
                List<String> lines = ((String) cron.parameterizedSpecification).split(/\r?\n/).findAll { it.trim() }
                String line = lines[(int) (trigger.line ?: 0)]
                Map assigned = parseCronParameters(line)
                assigned.each { name, raw ->
                    Map d = model.parameters.find { it.name == name }
                    if (d == null) {
                        undefined << "parameterizedCron ${name}".toString()   // the plugin ignores it at run time
                    } else {
                        values[name] = createValue(d, raw)
                    }
                }
                causes = [[_class: CAUSES.cron, shortDescription: "Started by parameterized timer: ${assigned}"]]
                break
            case 'webhook':
                Map gwt = requireTrigger(model.triggers, Definitions.GENERIC_TRIGGER, type)
                Map fired = GenericWebhook.invoke(gwt, model.parameters, trigger, credentials)
                values = fired.params
                env.putAll((Map) fired.variables)
                causes = [[_class: CAUSES.webhook, shortDescription: fired.cause]]
                break
            default:
                throw new HarnessError("trigger type ${type}: manual, push, poll, cron or webhook")
        }
        [causes: causes, params: values, env: env, undefined: undefined]
    }

    /** ParameterParser: "spec %A=b;C=d" -> [A: b, C: d]. */
    static Map parseCronParameters(String line) {
        int at = line.indexOf('%')
        if (at < 0) { return [:] }
        String pairs = line.substring(at + 1).trim()
        if (pairs.endsWith(';')) { pairs = pairs.substring(0, pairs.length() - 1) }
        Map out = [:]
        pairs.split(';').each { String pair ->
            int eq = pair.indexOf('=')
            if (eq < 0) { throw new HarnessError("parameterizedCron: '${pair}' is not NAME=value") }
            out[pair.substring(0, eq).trim()] = pair.substring(eq + 1).trim()
        }
        out
    }
}

class NotTriggered extends RuntimeException {
    NotTriggered(String message) { super(message) }
}

/** Generic Webhook Trigger 2.4.1 on one request: token, variables, filter, cause, parameters. */
class GenericWebhook {
    static Map invoke(Map gwt, List<Map> definitions, Map request, Map credentials) {
        Map<String, List<String>> headers = [:]
        ((Map) (request.headers ?: [:])).each { k, v -> headers[String.valueOf(k).toLowerCase()] = v instanceof List ? v : [v] }
        Map query = (Map) (request.query ?: [:])
        // GenericWebHookRequestReceiver.getGivenToken: ?token=, a `token` header, or Authorization: Bearer.
        String given = query.token ?: headers.token?.getAt(0)
        if (given == null) {
            given = headers.authorization?.find { it.startsWith('Bearer ') }?.substring(7)
        }
        String expected = gwt.token
        if (gwt.tokenCredentialId) {
            if (!credentials.containsKey(gwt.tokenCredentialId)) {
                throw new NotTriggered("credential ${gwt.tokenCredentialId} does not exist")
            }
            expected = credentials[gwt.tokenCredentialId]
        }
        if (expected && given != expected) { throw new NotTriggered('token does not match any job') }
        String body = request.body instanceof String ? request.body : JsonOutput.toJson(request.body)
        Object json = new JsonSlurper().parseText(body)
        Map<String, String> variables = [:]
        gwt.genericVariables.each { Map v ->
            if (v.expressionType != 'JSONPath') { throw new HarnessError('GenericVariable XPath is not modelled') }
            String value = jsonPath(json, (String) v.value)
            if (value == null || value.isEmpty()) { value = v.defaultValue ?: '' }
            if (v.regexpFilter) { value = value.replaceAll((String) v.regexpFilter, '') }
            variables[(String) v.key] = value
        }
        String text = render((String) gwt.regexpFilterText, variables)
        String expression = gwt.regexpFilterExpression
        boolean noFilter = !text && !expression
        if (!noFilter && !Pattern.compile(expression ?: '').matcher(text ?: '').find()) {
            throw new NotTriggered("filter '${expression}' does not match '${text}'")
        }
        // ParameterActionUtil: a non-empty variable of the same name, else the parameter's default.
        Map params = [:]
        definitions.each { Map d ->
            Object dflt = Triggers.createValue(d, d.defaultValue)
            String resolved = variables[d.name]
            String raw = resolved ? resolved : String.valueOf(dflt)
            params[d.name] = d.type == 'boolean' ? Boolean.parseBoolean(raw) : raw
        }
        [params: params, variables: variables, cause: render((String) gwt.causeString, variables) ?: 'Generic Cause']
    }

    /** Renderer.renderText: longest variable names first, `$NAME` then `${NAME}`. */
    static String render(String text, Map<String, String> variables) {
        if (!text) { return '' }
        List<String> names = new ArrayList(variables.keySet())
        names.sort { String a, String b -> a.length() == b.length() ? a <=> b : b.length() <=> a.length() }
        names.each { String name ->
            text = text.replace('$' + name, variables[name]).replace('${' + name + '}', variables[name])
        }
        text
    }

    /** The JSONPath subset `$.a.b.c` (what the Jenkinsfile uses); anything else is refused. */
    static String jsonPath(Object json, String path) {
        if (!(path ==~ /\$(\.[A-Za-z_][A-Za-z0-9_]*)+/)) {
            throw new HarnessError("JSONPath ${path}: only \$.a.b paths are modelled")
        }
        Object node = json
        for (String key : path.substring(2).split(/\./)) {
            if (!(node instanceof Map) || !((Map) node).containsKey(key)) { return null }
            node = ((Map) node)[key]
        }
        node == null ? null : (node instanceof Map || node instanceof List ? JsonOutput.toJson(node) : String.valueOf(node))
    }
}

// ---------------------------------------------------------------------------------------------------
// Job DSL: the seed script against mocked contexts. Each context lists the methods that exist in Job DSL
// 3654.vdf58f53e2d15 (job-dsl-core) or, for the dynamic DSL, the @DataBoundConstructor/@DataBoundSetter
// names of the plugin classes at their pinned releases (docs/jenkins.md, "Plugin pins").

class JobDsl {
    static final Map<String, Map> CONTEXTS = [
        job             : [displayName: [args: [String]], description: [args: [String]],
                           parameters: [context: 'parameters'], properties: [context: 'properties'],
                           definition: [context: 'definition'], disabled: [args: [Boolean], optional: 1],
                           logRotator: [context: 'logRotator']],
        logRotator      : [numToKeep: [args: [Integer]], artifactNumToKeep: [args: [Integer]],
                           daysToKeep: [args: [Integer]], artifactDaysToKeep: [args: [Integer]]],
        // BuildParametersContext: stringParam(name, defaultValue = null, description = null), ...
        parameters      : [stringParam: [args: [String, String, String], optional: 2, repeat: true],
                           booleanParam: [args: [String, Boolean, String], optional: 2, repeat: true],
                           choiceParam: [args: [String, List, String], optional: 1, repeat: true]],
        properties      : [pipelineTriggers: [context: 'pipelineTriggers'],
                           disableConcurrentBuilds: [context: 'disableConcurrentBuilds', optionalContext: true]],
        disableConcurrentBuilds: [abortPrevious: [args: [Boolean]]],
        pipelineTriggers: [triggers: [context: 'triggers']],
        // The dynamic DSL: GitHubPushTrigger(), SCMTrigger(scmpoll_spec), ParameterizedTimerTrigger(
        // parameterizedSpecification), TimerTrigger(spec), GenericTrigger (no symbol: uncapitalised class name).
        triggers        : [githubPush: [context: 'githubPush', optionalContext: true, repeat: true],
                           pollSCM: [context: 'pollSCM', repeat: true], cron: [context: 'cron', repeat: true],
                           parameterizedCron: [context: 'parameterizedCron', repeat: true],
                           genericTrigger: [context: 'genericTrigger', repeat: true]],
        githubPush      : [:],
        pollSCM         : [scmpoll_spec: [args: [String], required: true], ignorePostCommitHooks: [args: [Boolean]]],
        cron            : [spec: [args: [String], required: true]],
        parameterizedCron: [parameterizedSpecification: [args: [String], required: true]],
        genericTrigger  : [genericVariables: [context: 'genericVariables'],
                           genericRequestVariables: [context: 'unsupported'], genericHeaderVariables: [context: 'unsupported'],
                           regexpFilterText: [args: [String]], regexpFilterExpression: [args: [String]],
                           causeString: [args: [String]], token: [args: [String]], tokenCredentialId: [args: [String]],
                           printContributedVariables: [args: [Boolean]], printPostContent: [args: [Boolean]],
                           silentResponse: [args: [Boolean]], overrideQuietPeriod: [args: [Boolean]],
                           shouldNotFlatten: [args: [Boolean]], allowSeveralTriggersPerBuild: [args: [Boolean]]],
        genericVariables: [genericVariable: [context: 'genericVariable', repeat: true]],
        genericVariable : [key: [args: [String], required: true], value: [args: [String], required: true],
                           expressionType: [args: [String], oneOf: ['JSONPath', 'XPath']],
                           defaultValue: [args: [String]], regexpFilter: [args: [String]]],
        unsupported     : [:],
        // WorkflowDefinitionContext, CpsScmContext, ScmContext.git(Closure), GitContext, RemoteContext.
        definition      : [cpsScm: [context: 'cpsScm'], cps: [context: 'cps']],
        cps             : [script: [args: [String]], sandbox: [args: [Boolean], optional: 1]],
        cpsScm          : [scm: [context: 'scm'], scriptPath: [args: [String]], lightweight: [args: [Boolean], optional: 1]],
        scm             : [git: [context: 'git']],
        git             : [remote: [context: 'remote', repeat: true], branch: [args: [String], repeat: true],
                           branches: [args: [String], variadic: true]],
        remote          : [url: [args: [String]], credentials: [args: [String]], name: [args: [String]],
                           refspec: [args: [String]]],
    ]

    /** Runs the seed script; returns the jobs it defines, as recorded call trees. */
    static List<Map> run(String script) {
        List<Map> jobs = []
        Binding binding = new Binding()
        binding.setVariable('pipelineJob', { String name, Closure body ->
            if (jobs.any { it.name == name }) { throw new HarnessError("Job DSL: job ${name} defined twice") }
            Map node = [name: 'pipelineJob', args: [name], children: []]
            DslContext.run('job', node, body, "pipelineJob('${name}')")
            jobs << [type: 'pipelineJob', name: name, tree: node]
        })
        ['job', 'freeStyleJob', 'multibranchPipelineJob', 'folder', 'listView', 'matrixJob', 'organizationFolder'].each { String other ->
            binding.setVariable(other, { Object... args -> throw new HarnessError("Job DSL: ${other} is not modelled") })
        }
        new GroovyShell(JobDsl.classLoader, binding).evaluate(script, 'seed-job.groovy')
        jobs.collect { Map job -> [type: job.type, name: job.name] + normalise((Map) job.tree) }
    }

    static Map child(Map node, String name) { ((List<Map>) node.children).find { it.name == name } }

    static List<Map> children(Map node, String name) { ((List<Map>) node?.children ?: []).findAll { it.name == name } }

    static Object value(Map node, String name) {
        List<Map> found = children(node, name)
        found ? (found[-1].args ? found[-1].args[0] : true) : null
    }

    /** The job as Jenkins would store it: parameters and triggers in the same shape as the Jenkinsfile's. */
    static Map normalise(Map tree) {
        Map out = [displayName: value(tree, 'displayName'), description: value(tree, 'description')]
        out.parameters = []
        children(tree, 'parameters').each { Map block ->
            ((List<Map>) block.children).each { Map p ->
                List args = (List) p.args
                String name = args[0]
                if (out.parameters.any { it.name == name }) { throw new HarnessError("Job DSL: parameter ${name} already defined") }
                switch (p.name) {
                    case 'stringParam':
                        out.parameters << Definitions.stringParameter(name, args[1], args[2], false)
                        break
                    case 'booleanParam':
                        out.parameters << Definitions.booleanParameter(name, args.size() > 1 ? args[1] : false, args[2])
                        break
                    default:
                        out.parameters << Definitions.choiceParameter(name, args[1], args[2])
                }
            }
        }
        out.triggers = []
        children(tree, 'properties').each { Map props ->
            children(props, 'pipelineTriggers').each { Map pt ->
                children(pt, 'triggers').each { Map triggers ->
                    ((List<Map>) triggers.children).each { Map t -> out.triggers << trigger(t) }
                }
            }
        }
        Map definition = child(tree, 'definition')
        Map cpsScm = definition ? child(definition, 'cpsScm') : null
        if (cpsScm != null) {
            Map git = child(child(cpsScm, 'scm') ?: [children: []], 'git')
            out.definition = [type: 'cpsScm', scriptPath: value(cpsScm, 'scriptPath') ?: 'Jenkinsfile',
                              lightweight: value(cpsScm, 'lightweight') ?: false,
                              git: git == null ? null : [remotes: children(git, 'remote').collect { Map r ->
                                  [url: value(r, 'url'), credentials: value(r, 'credentials')] },
                                  branches: children(git, 'branch').collect { it.args[0] }]]
        } else if (definition != null) {
            out.definition = [type: 'cps', script: value(child(definition, 'cps'), 'script')]
        }
        out
    }

    static Map trigger(Map t) {
        switch (t.name) {
            case 'githubPush': return [class: Definitions.GITHUB_PUSH]
            case 'pollSCM':
                return [class: Definitions.SCM_TRIGGER, spec: value(t, 'scmpoll_spec'),
                        ignorePostCommitHooks: value(t, 'ignorePostCommitHooks') ?: false]
            case 'cron': return [class: Definitions.TIMER_TRIGGER, spec: value(t, 'spec')]
            case 'parameterizedCron':
                return [class: Definitions.PARAMETERIZED_TIMER, parameterizedSpecification: value(t, 'parameterizedSpecification')]
            default:
                Map args = [:]
                ((List<Map>) t.children).each { Map c ->
                    if (c.name == 'genericVariables') {
                        args.genericVariables = children(c, 'genericVariable').collect { Map v ->
                            Map vars = [:]
                            ((List<Map>) v.children).each { Map kv -> vars[kv.name] = kv.args[0] }
                            vars
                        }
                    } else {
                        args[c.name] = c.args ? c.args[0] : true
                    }
                }
                return Definitions.genericTrigger(args)
        }
    }
}

/** One Job DSL context: refuses what does not exist there, checks argument types, records the calls. */
class DslContext {
    final String type
    final Map node
    final String where

    DslContext(String type, Map node, String where) {
        this.type = type
        this.node = node
        this.where = where
    }

    static void run(String type, Map node, Closure body, String where) {
        DslContext context = new DslContext(type, node, where)
        if (body != null) { Section.within(context, body) }
        Map spec = JobDsl.CONTEXTS[type]
        spec.each { String name, Map method ->
            if (method.required && !((List<Map>) node.children).any { it.name == name }) {
                throw new HarnessError("Job DSL ${where}: the following options are required and must be specified: ${name}")
            }
        }
    }

    def propertyMissing(String name) { throw new HarnessError("Job DSL ${where}: unknown name '${name}'") }

    def methodMissing(String name, Object rawArgs) {
        Map spec = JobDsl.CONTEXTS[type]
        Map method = (Map) spec[name]
        if (method == null) {
            throw new HarnessError("Job DSL ${where}: no method ${name}() here (modelled: ${spec.keySet()})")
        }
        List args = ((Object[]) rawArgs) as List
        if (!method.repeat && ((List<Map>) node.children).any { it.name == name } && method.context) {
            throw new HarnessError("Job DSL ${where}: ${name} {} given twice")
        }
        Map child = [name: name, args: [], children: []]
        if (method.context) {
            if (method.context == 'unsupported') { throw new HarnessError("Job DSL ${where}: ${name} is not modelled") }
            Closure body = args && args[-1] instanceof Closure ? (Closure) args[-1] : null
            if (body == null && !method.optionalContext) { throw new HarnessError("Job DSL ${where}: ${name} needs a closure") }
            if (args.size() > (body == null ? 0 : 1)) { throw new HarnessError("Job DSL ${where}: ${name} takes only a closure") }
            run((String) method.context, child, body, "${where} ${name}")
        } else {
            List<Class> types = (List<Class>) method.args
            int optional = (int) (method.optional ?: 0)
            if (!method.variadic && (args.size() > types.size() || args.size() < types.size() - optional)) {
                throw new HarnessError("Job DSL ${where}: ${name}(${types*.simpleName.join(', ')}), got ${args}")
            }
            args.eachWithIndex { Object arg, int i ->
                Class expected = method.variadic ? types[0] : types[i]
                if (arg != null && !expected.isInstance(arg) && !(expected == String && arg instanceof GString)) {
                    throw new HarnessError("Job DSL ${where}: ${name} argument ${i + 1} must be ${expected.simpleName}, got ${arg}")
                }
            }
            child.args = args.collect { it instanceof GString ? it.toString() : it }
            if (method.oneOf && !(child.args[0] in method.oneOf)) {
                throw new HarnessError("Job DSL ${where}: ${name} is one of ${method.oneOf}, got ${child.args[0]}")
            }
        }
        ((List<Map>) node.children) << child
        null
    }
}

// ---------------------------------------------------------------------------------------------------
// Entry point.

class Harness {
    static PipelineModel load(String jenkinsfile) {
        PipelineModel model = null
        CompilerConfiguration config = new CompilerConfiguration()
        config.addCompilationCustomizers(new DeclarativeEqualsRenamer())
        Binding binding = new Binding()
        binding.setVariable('pipeline', { Closure body ->
            if (model != null) { throw new HarnessError('two pipeline blocks') }
            model = new PipelineModel()
            Section.within(new PipelineSection(model), body)
        })
        new GroovyShell(Harness.classLoader, binding, config).evaluate(jenkinsfile, 'WorkflowScript')
        if (model == null) { throw new HarnessError('no pipeline {} block: not a declarative Jenkinsfile') }
        if (model.stages == null) { throw new HarnessError('pipeline: no stages') }
        model
    }

    static List<Map> stageTree(List<StageModel> stages) {
        stages.collect { StageModel s ->
            [name: s.name, path: s.path(), when: s.when != null, input: s.input, options: s.options,
             post: s.post.keySet() as List, stages: s.stages ? stageTree(s.stages) : null]
        }
    }

    static Map describe(PipelineModel model) {
        [agent     : model.agent, options: model.options, parameters: model.parameters, triggers: model.triggers,
         stages    : stageTree(model.stages), post: model.post.keySet() as List,
         environment: model.environment != null]
    }

    static Map runScenario(String jenkinsfile, Map scenario, Map request) {
        Map out = [name: scenario.name]
        PipelineModel model = load(jenkinsfile)   // each build compiles the file afresh, as Jenkins does
        Map started
        try {
            started = Triggers.start(model, scenario, (Map) (request.credentials ?: [:]))
        } catch (NotTriggered e) {
            return out + [triggered: false, reason: e.message]
        }
        Build build = new Build(scenario: scenario, jobName: request.job_name ?: 'mlstack', number: (int) (scenario.number ?: 42))
        build.causes = started.causes
        build.params.setBuild(build)
        build.params.putAll((Map) started.params)
        build.params.setFrozen(true)
        // The build's own variables (Run.getEnvironment), then the parameters and the trigger's variables.
        build.baseEnv.putAll([JOB_NAME : build.jobName, JOB_BASE_NAME: build.jobName, BUILD_NUMBER: "${build.number}".toString(),
                              BUILD_ID : "${build.number}".toString(), BUILD_TAG: "jenkins-${build.jobName}-${build.number}".toString(),
                              BUILD_URL: "${request.jenkins_url}job/${build.jobName}/${build.number}/".toString(),
                              JOB_URL  : "${request.jenkins_url}job/${build.jobName}/".toString(),
                              JENKINS_URL: (String) request.jenkins_url, NODE_NAME: 'built-in', EXECUTOR_NUMBER: '0'])
        ((Map) started.params).each { k, v -> build.baseEnv[(String) k] = String.valueOf(v) }
        ((Map) started.env).each { k, v -> build.baseEnv[(String) k] = (String) v }
        ((List) started.undefined).each { build.undefined(it) }
        File root = Files.createTempDirectory('mlstack-jenkins-').toFile()
        try {
            build.shell = new Shell(root, (List<String>) request.path_programs, (List<String>) request.workspace_programs)
            build.baseEnv.WORKSPACE = build.shell.workspace.path
            new Interpreter(model, build).run()
        } finally {
            root.deleteDir()
        }
        List<Map> real = build.stageRecords.findAll { !it.synthetic }
        out + [triggered : true, causes: build.causes, params: new LinkedHashMap(build.params),
               stages    : build.stageRecords,
               ran       : real.findAll { !((String) it.status).startsWith('SKIPPED') }*.name,
               skipped   : real.findAll { ((String) it.status).startsWith('SKIPPED') }*.name,
               steps     : build.steps, posts: build.posts, inputs: build.inputs, result: build.result,
               error     : build.error, undefined: build.undefinedRefs, cause_queries: build.causeQueries.unique()]
    }

    static void main(Map request) {
        Map answer = [groovy: GroovySystem.version, java: System.getProperty('java.version')]
        if (request.jenkinsfile != null) {
            String text = new File((String) request.jenkinsfile).text
            try {
                answer.definition = describe(load(text))
            } catch (HarnessError e) {
                answer.harness_error = e.message
                println JsonOutput.toJson(answer)
                return
            }
            answer.scenarios = ((List<Map>) (request.scenarios ?: [])).collect { Map scenario ->
                try {
                    runScenario(scenario.jenkinsfile ? new File((String) scenario.jenkinsfile).text : text, scenario, request)
                } catch (HarnessError e) {
                    [name: scenario.name, harness_error: e.message]
                }
            }
        }
        if (request.seed_script != null) {
            try {
                answer.jobs = JobDsl.run((String) request.seed_script)
            } catch (HarnessError e) {
                answer.jobs_error = e.message
            }
        }
        println JsonOutput.toJson(answer)
    }
}

Harness.main((Map) new JsonSlurper().parse(new File(args[0])))
