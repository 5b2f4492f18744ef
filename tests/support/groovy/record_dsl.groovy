// Runs a Groovy DSL file (a declarative Jenkinsfile, a Job DSL script) against a recorder and prints
// every call as JSON: {"name", "args", "children"}. Groovy evaluates the file itself (GStrings,
// maps, lists, closures), so the values read are the ones Jenkins would see. Unknown properties
// (params, env, currentBuild, any) are recorders too; they are false in a boolean context.
import groovy.json.JsonOutput

class Recorder {
    List calls = []

    static Object plain(Object value) {
        if (value instanceof Map) {
            return value.collectEntries { k, v -> [(k.toString()): plain(v)] }
        }
        if (value instanceof Collection || value instanceof Object[]) {
            return value.collect { plain(it) }
        }
        if (value instanceof String || value instanceof Number || value instanceof Boolean || value == null) {
            return value
        }
        return value.toString()
    }

    def methodMissing(String name, Object argsObject) {
        Object[] arguments = argsObject as Object[]
        Map call = [name: name, args: [], children: []]
        Closure body = null
        arguments.each { argument ->
            if (argument instanceof Closure) {
                body = argument
            } else {
                call.args << plain(argument)
            }
        }
        if (body != null) {
            Recorder child = new Recorder()
            body.resolveStrategy = Closure.DELEGATE_FIRST
            body.delegate = child
            body.call()
            call.children = child.calls
        }
        calls << call
        return new Recorder()
    }

    def propertyMissing(String name) {
        return new Recorder()
    }

    def propertyMissing(String name, Object value) {
        calls << [name: name, args: [plain(value)], children: [], assignment: true]
    }

    boolean asBoolean() {
        return false
    }

    String toString() {
        return ''
    }
}

Recorder recorder = new Recorder()
Closure script = new GroovyShell().evaluate('{ -> \n' + new File(args[0]).getText('UTF-8') + '\n}')
script.resolveStrategy = Closure.DELEGATE_FIRST
script.delegate = recorder
script.call()
println(JsonOutput.toJson(recorder.calls))
