import { execSuite } from '../suites/exec.js';

execSuite('exec in a real VM');
