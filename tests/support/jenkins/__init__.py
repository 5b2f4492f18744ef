"""The Jenkins controller stand-in: harness.groovy (Jenkinsfile and Job DSL in Groovy 2.4.21) and JCasC helpers."""
