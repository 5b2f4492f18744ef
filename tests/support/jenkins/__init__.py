"""The Jenkins controller stand-in: harness.groovy (Jenkinsfile, Job DSL in Groovy 2.4.21), JCasC helpers."""
